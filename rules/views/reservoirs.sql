-- v_reservoirs: the latest survey of every reservoir and dyke, with the reservoir's size class by storage
-- (rules/reference/reservoir_size_classes.csv, SL 252-2017: S) and whether its safety appraisal is overdue
-- (rules/reference/dam_appraisal_cycle.csv, 《水库大坝安全鉴定办法》: S).
CREATE OR REPLACE VIEW v_reservoirs AS
WITH latest AS (
    SELECT * FROM stg_reservoirs
    QUALIFY row_number() OVER (PARTITION BY object_id
                               ORDER BY survey_round DESC, survey_date DESC, source_file DESC, row_no DESC) = 1
), cycle AS (
    SELECT max(years) FILTER (WHERE parameter = 'first_within') AS first_within,
           max(years) FILTER (WHERE parameter = 'then_every') AS then_every
    FROM ref_dam_appraisal_cycle
)
SELECT r.*,
    (SELECT max_by(c.size_class, c.rank) FROM ref_reservoir_size_classes c
     WHERE r.object_type = '水库' AND r.storage_10k_m3 >= c.min_storage_10k_m3) AS size_class,
    date_diff('day', r.last_appraisal, r.survey_date) / 365.25 AS years_since_appraisal,
    r.object_type = '水库' AND CASE
        WHEN r.last_appraisal IS NOT NULL THEN date_diff('day', r.last_appraisal, r.survey_date) / 365.25 > cy.then_every
        ELSE year(r.survey_date) - r.year_built > cy.first_within END AS appraisal_overdue
FROM latest r
CROSS JOIN cycle cy;
