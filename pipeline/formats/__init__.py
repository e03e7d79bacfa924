"""Files written for people: the formula neutraliser every CSV and XLSX goes through (excel_safe), XLSX
streamed row by row (xlsx_stream), big CSVs assembled from fingerprinted fragments (csv_fragments)."""
