-- v_water_supply: the latest survey of every water plant, pumping station, source well and trunk main.
CREATE OR REPLACE VIEW v_water_supply AS
WITH latest AS (
    SELECT * FROM stg_water_supply
    QUALIFY row_number() OVER (PARTITION BY facility_id
                               ORDER BY survey_round DESC, survey_date DESC, source_file DESC, row_no DESC) = 1
)
SELECT w.*,
    w.facility_type = '供水干管' AS is_main,
    w.facility_type = '供水干管' AND w.pipe_material IN ('灰口铸铁', '石棉水泥') AS brittle_main,
    year(w.survey_date) - w.year_built AS age_years
FROM latest w;
