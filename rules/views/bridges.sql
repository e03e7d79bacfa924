-- v_bridges: the latest survey of every bridge, with age and design era.
CREATE OR REPLACE VIEW v_bridges AS
WITH latest AS (
    SELECT * FROM stg_bridges
    QUALIFY row_number() OVER (PARTITION BY bridge_id
                               ORDER BY survey_round DESC, survey_date DESC, source_file DESC, row_no DESC) = 1
)
SELECT b.*,
    year(b.survey_date) - b.year_built AS age_years,
    CASE WHEN b.year_built < 1990 THEN '1990年前' WHEN b.year_built < 2008 THEN '1990–2007'
         WHEN b.year_built >= 2008 THEN '2008年后' END AS design_era,   -- JTG/T B02-01-2008 is the current bridge seismic code
    b.continuity = '简支' AND b.span_count > 1 AS simply_supported_multispan,
    date_diff('day', b.last_inspection, b.survey_date) / 365.25 AS years_since_inspection,
    t.design_pga_g, t.design_intensity AS site_design_intensity
FROM latest b
LEFT JOIN ref_town_seismic t ON t.town_code = b.town_code;
