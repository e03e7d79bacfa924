-- v_hazchem_units: GB 18218-2018 per production/storage unit:  S = Σ q/Q  (S ≥ 1: major hazard source),
--   R = α · Σ β·q/Q  with α by people within 500 m (rules-reference §3, S).
-- Q: the critical quantity the site declared, else the named-chemical table, else the category table.
CREATE OR REPLACE VIEW v_hazchem_sites_latest AS
SELECT * FROM stg_hazchem_sites
QUALIFY row_number() OVER (PARTITION BY site_id
                           ORDER BY survey_round DESC, survey_date DESC, source_file DESC, row_no DESC) = 1;

CREATE OR REPLACE VIEW v_hazchem_inventory AS
WITH named AS (
    SELECT chemical AS name, chemical, cas, critical_t, beta FROM ref_gb18218_named
    UNION ALL
    SELECT trim(alias), chemical, cas, critical_t, beta
    FROM ref_gb18218_named, unnest(string_split(coalesce(aliases, ''), ';')) AS a(alias) WHERE trim(alias) <> ''
)
SELECT i.site_id, i.unit_name, i.unit_kind, i.chemical, i.cas, i.category, i.max_quantity_t,
    coalesce(i.critical_quantity_t, n.critical_t, c.critical_t) AS critical_t,
    CASE WHEN i.critical_quantity_t IS NOT NULL THEN '申报' WHEN n.critical_t IS NOT NULL THEN '名录'
         WHEN c.critical_t IS NOT NULL THEN '类别' END AS critical_source,
    coalesce(n.beta, c.beta, 1.0) AS beta,
    i.max_quantity_t / coalesce(i.critical_quantity_t, n.critical_t, c.critical_t) AS q_over_q
FROM (  -- the latest inventory round of each site (a resurvey of the site alone keeps its inventory)
    SELECT * FROM stg_hazchem_inventory
    QUALIFY survey_round = max(survey_round) OVER (PARTITION BY site_id)
) i
JOIN v_hazchem_sites_latest s ON s.site_id = i.site_id
LEFT JOIN named n ON n.name = i.chemical OR (i.cas IS NOT NULL AND n.cas = i.cas)
LEFT JOIN ref_gb18218_categories c ON c.category = i.category
QUALIFY row_number() OVER (PARTITION BY i.site_id, i.unit_name, i.chemical ORDER BY n.critical_t NULLS LAST) = 1;

CREATE OR REPLACE VIEW v_hazchem_units AS
SELECT u.*, coalesce(a.alpha, 2.0) AS alpha,   -- population unknown: the highest α (J, conservative)
       round(coalesce(a.alpha, 2.0) * u.sum_beta_q, 3) AS r_value, u.s_value >= 1 AS is_major
FROM (
    SELECT i.site_id, i.unit_name, any_value(i.unit_kind) AS unit_kind,
           sum(i.q_over_q) AS s_value, sum(i.beta * i.q_over_q) AS sum_beta_q,
           count(*) FILTER (WHERE i.critical_t IS NULL) AS chemicals_without_q,
           count(*) AS chemicals
    FROM v_hazchem_inventory i GROUP BY ALL
) u
JOIN v_hazchem_sites_latest s USING (site_id)
LEFT JOIN ref_alpha a ON s.population_500m >= a.min_people AND (a.max_people IS NULL OR s.population_500m <= a.max_people);

-- v_hazchem_sites: the latest survey of every site, with its computed major-hazard grade.
CREATE OR REPLACE VIEW v_hazchem_sites AS
WITH site_units AS (
    SELECT site_id, max(s_value) AS max_s, max(r_value) FILTER (WHERE is_major) AS max_r,
           bool_or(is_major) AS is_major_source, sum(chemicals_without_q) AS chemicals_without_q,
           sum(chemicals) AS chemicals
    FROM v_hazchem_units GROUP BY site_id
),
graded AS (
    SELECT su.*, g.grade AS computed_grade, g.grade_rank AS computed_rank
    FROM site_units su
    LEFT JOIN ref_gb18218_grades g ON su.is_major_source AND su.max_r >= g.min_r
    QUALIFY row_number() OVER (PARTITION BY su.site_id ORDER BY g.min_r DESC NULLS LAST) = 1
)
SELECT s.*,
    round(coalesce(g.max_s, 0), 4) AS gb18218_s, g.max_r AS gb18218_r,
    coalesce(g.is_major_source, false) AS is_major_source,
    coalesce(g.computed_grade, '非重大危险源') AS computed_grade,
    coalesce(g.computed_rank, 5) AS computed_rank,
    CASE s.declared_grade WHEN '一级' THEN 1 WHEN '二级' THEN 2 WHEN '三级' THEN 3 WHEN '四级' THEN 4
         WHEN '非重大危险源' THEN 5 END AS declared_rank,
    coalesce(g.chemicals_without_q, 0) AS chemicals_without_q,
    coalesce(g.chemicals, 0) AS chemicals,
    t.design_pga_g, t.design_intensity AS site_design_intensity
FROM v_hazchem_sites_latest s
LEFT JOIN graded g USING (site_id)
LEFT JOIN ref_town_seismic t ON t.town_code = s.town_code;
