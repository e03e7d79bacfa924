-- v_shelters: the latest survey of every emergency shelter, with its capacity checked against its effective area
-- at the per-person area of its class (rules/reference/shelter_standards.csv: U until read in the standards), and
-- whether it can be counted on after an earthquake (usable: not on a fault or geohazard point, not in poor repair).
CREATE OR REPLACE VIEW v_shelters AS
WITH latest AS (
    SELECT * FROM stg_shelters
    QUALIFY row_number() OVER (PARTITION BY shelter_id
                               ORDER BY survey_round DESC, survey_date DESC, source_file DESC, row_no DESC) = 1
)
SELECT s.*,
    floor(s.effective_area_m2 / st.min_area_per_person_m2)::BIGINT AS area_capacity,
    st.min_area_per_person_m2,
    s.capacity_people > floor(s.effective_area_m2 / st.min_area_per_person_m2) AS capacity_over_area,
    concat_ws('、', CASE WHEN s.water = false THEN '应急供水' END, CASE WHEN s.power = false THEN '应急供电' END,
              CASE WHEN s.toilets = false THEN '应急厕所' END, CASE WHEN s.sewage = false THEN '排污设施' END,
              CASE WHEN s.supplies = false THEN '物资储备' END) AS missing_facilities,
    NOT coalesce(s.on_fault, false) AND NOT coalesce(s.on_geohazard, false) AND coalesce(s.condition, '') <> '差'
        AS usable,
    least(s.capacity_people, floor(s.effective_area_m2 / st.min_area_per_person_m2)::BIGINT) AS counted_capacity
FROM latest s
LEFT JOIN ref_shelter_standards st ON st.shelter_class = s.shelter_class;
