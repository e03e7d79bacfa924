-- v_geohazards: the latest survey of every geological hazard point, with its 险情等级 computed from the people and
-- property it threatens (rules/reference/geohazard_danger_grades.csv, after 《国家突发地质灾害应急预案》: S).
CREATE OR REPLACE VIEW v_geohazards AS
WITH latest AS (
    SELECT * FROM stg_geohazards
    QUALIFY row_number() OVER (PARTITION BY point_id
                               ORDER BY survey_round DESC, survey_date DESC, source_file DESC, row_no DESC) = 1
), graded AS (
    SELECT g.point_id, max_by(d.grade, d.rank) AS danger_grade, max(d.rank) AS grade_rank
    FROM latest g
    JOIN ref_geohazard_danger_grades d
      ON coalesce(g.threatened_people, 0) >= d.min_people OR coalesce(g.threatened_property_wan, 0) >= d.min_property_wan
    GROUP BY g.point_id
)
SELECT g.*, gr.danger_grade, gr.grade_rank,
    coalesce(g.threatened_people, 0) > 0 AS threatens_people,
    (g.monitor IS NULL OR g.monitoring_method = '无') AS no_monitor,
    g.measure IN ('搬迁避让', '工程治理') AS lasting_measure
FROM latest g
LEFT JOIN graded gr USING (point_id);
