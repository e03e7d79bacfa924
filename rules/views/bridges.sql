-- v_bridges: the latest survey of every bridge, with age and design era.
CREATE OR REPLACE VIEW v_bridges AS
WITH latest AS (
    SELECT * FROM stg_bridges
    QUALIFY row_number() OVER (PARTITION BY bridge_id
                               ORDER BY survey_round DESC, survey_date DESC, source_file DESC, row_no DESC) = 1
)
SELECT b.*,
    year(b.survey_date) - b.year_built AS age_years,
    -- Design era by completion year, a proxy for the seismic code the bridge was designed to (J: design precedes
    -- completion, so a bridge finished early in an era may follow the previous code). JTG/T 2231-01-2020 replaced
    -- JTG/T B02-01-2008 (issue 10 §3; year of the change from the code's number, date in force not checked: U);
    -- JTG/T B02-01-2008 replaced JTJ 004-89, in use from 1990 (U: our recollection, matches the 1990 cut of R11).
    CASE WHEN b.year_built < 1990 THEN '1990年前' WHEN b.year_built < 2008 THEN '1990–2007'
         WHEN b.year_built < 2020 THEN '2008–2019' WHEN b.year_built >= 2020 THEN '2020年后' END AS design_era,
    CASE WHEN b.year_built < 1990 THEN 'JTJ 004-89之前' WHEN b.year_built < 2008 THEN 'JTJ 004-89'
         WHEN b.year_built < 2020 THEN 'JTG/T B02-01-2008' WHEN b.year_built >= 2020 THEN 'JTG/T 2231-01-2020' END
        AS design_code,
    b.continuity = '简支' AND b.span_count > 1 AS simply_supported_multispan,
    date_diff('day', b.last_inspection, b.survey_date) / 365.25 AS years_since_inspection,
    t.design_pga_g, t.design_intensity AS site_design_intensity
FROM latest b
LEFT JOIN ref_town_seismic t ON t.town_code = b.town_code;
