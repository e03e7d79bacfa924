-- GB 18218-2018 (rules-reference §3, S): per production/storage unit  S = Σ q/Q  (S ≥ 1: major hazard
-- source) and  R = α · Σ β·q/Q  with α by the people within 500 m (表5).
--
-- Q of each inventory row, in this order (the enterprise's declared Q never overrides the standard):
--   1. 表1 (ref_gb18218_named, all 85 entries): matched by CAS number where given, else by name or alias after
--      normalisation (full-width → half-width, spaces removed, case folded), else by the name without its bracketed
--      qualifiers (e.g. 氧(液化的) → 氧); several entries sharing a CAS or a base name (硝化纤维素, 硝酸铵): the name
--      that agrees, else the lowest Q (J). A name listed in `not_names` (盐酸, 氢氟酸, 氨水 …: solutions sharing the
--      CAS) never matches that entry by CAS, nor by its base name; so an entry with a content bound (甲醛（含量>90%）)
--      is matched only by its own full name, and 甲醛 / 甲醛(37%) / 福尔马林 go by the category typed (表2). β: 表3, else 表4 by the substance's class (beta_basis).
--   2. 表2 by category (ref_gb18218_categories): the category the enterprise typed and the one of our reference
--      classification of common unnamed substances (ref_gb18218_classified, J, e.g. 乙烷 → W2); with both, the lower
--      Q (GB 18218-2018: a substance with several hazards takes the lowest critical quantity).
--   3. Only when the substance is neither named nor categorised: the Q the enterprise declared, flagged
--      (critical_source 企业申报(未核实), confidence U; rule H16). No Q at all: left out of S and R (H16).
-- The declared Q is always kept (declared_critical_t); a declared Q that differs from the standard's is listed
-- on the site (declared_q_differs: evidence of H01–H05).
CREATE OR REPLACE VIEW v_hazchem_sites_latest AS
SELECT * FROM stg_hazchem_sites
QUALIFY row_number() OVER (PARTITION BY site_id
                           ORDER BY survey_round DESC, survey_date DESC, source_file DESC, row_no DESC) = 1;

-- Every name a substance is known by (normalised): 表1 names and aliases, and the classified unnamed substances.
CREATE OR REPLACE VIEW v_gb18218_names AS
WITH raw AS (
    SELECT 'T1' AS list, name_zh, unnest(list_prepend(name_zh, string_split(coalesce(aliases::VARCHAR, ''), ';'))) AS nm
    FROM ref_gb18218_named
    UNION ALL
    SELECT 'CLS', name_zh, unnest(list_prepend(name_zh, string_split(coalesce(aliases::VARCHAR, ''), ';')))
    FROM ref_gb18218_classified
), keyed AS (
    SELECT DISTINCT list, name_zh, lower(regexp_replace(translate(trim(nm), '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～【】〔〕、₂₃₄　', '!"#$%&''()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefghijklmnopqrstuvwxyz{|}~[][],234 '), '\s+', '', 'g')) AS name_key FROM raw WHERE trim(nm) <> ''
)
SELECT list, name_zh, name_key, regexp_replace(name_key, '\([^()]*\)|\[[^\[\]]*\]', '', 'g') AS base_key FROM keyed;

CREATE OR REPLACE VIEW v_gb18218_cas AS
SELECT DISTINCT list, name_zh, trim(c) AS cas FROM (
    SELECT 'T1' AS list, name_zh, unnest(string_split(coalesce(cas::VARCHAR, ''), ';')) AS c FROM ref_gb18218_named
    UNION ALL
    SELECT 'CLS', name_zh, unnest(string_split(coalesce(cas::VARCHAR, ''), ';')) FROM ref_gb18218_classified
) WHERE trim(c) <> '';

CREATE OR REPLACE VIEW v_gb18218_not_names AS
SELECT DISTINCT name_zh, lower(regexp_replace(translate(trim(nm), '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～【】〔〕、₂₃₄　', '!"#$%&''()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefghijklmnopqrstuvwxyz{|}~[][],234 '), '\s+', '', 'g')) AS name_key
FROM (SELECT name_zh, unnest(string_split(coalesce(not_names::VARCHAR, ''), ';')) AS nm FROM ref_gb18218_named)
WHERE trim(nm) <> '';

CREATE OR REPLACE VIEW v_hazchem_inventory AS
WITH inv AS (  -- the latest inventory round of each site (a resurvey of the site alone keeps its inventory)
    SELECT i.*,
           concat_ws('|', i.site_id, i.unit_name, i.chemical, i.file_id, i.row_no) AS inv_key,
           lower(regexp_replace(translate(trim(i.chemical), '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～【】〔〕、₂₃₄　', '!"#$%&''()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefghijklmnopqrstuvwxyz{|}~[][],234 '), '\s+', '', 'g')) AS name_key,
           CASE WHEN regexp_full_match(lower(regexp_replace(translate(trim(i.cas), '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～【】〔〕、₂₃₄　', '!"#$%&''()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefghijklmnopqrstuvwxyz{|}~[][],234 '), '\s+', '', 'g')), '\d{2,7}-\d{2}-\d') THEN lower(regexp_replace(translate(trim(i.cas), '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～【】〔〕、₂₃₄　', '!"#$%&''()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefghijklmnopqrstuvwxyz{|}~[][],234 '), '\s+', '', 'g')) END AS cas_key
    FROM (SELECT * FROM stg_hazchem_inventory
          QUALIFY survey_round = max(survey_round) OVER (PARTITION BY site_id)) i
    JOIN v_hazchem_sites_latest s ON s.site_id = i.site_id
),
hits AS (
    SELECT i.inv_key, c.list, c.name_zh, true AS by_cas, NULL::INTEGER AS name_level
    FROM inv i JOIN v_gb18218_cas c ON c.cas = i.cas_key
    WHERE NOT EXISTS (SELECT 1 FROM v_gb18218_not_names x WHERE x.name_zh = c.name_zh
                      AND x.name_key IN (i.name_key, regexp_replace(i.name_key, '\([^()]*\)|\[[^\[\]]*\]', '', 'g')))
    UNION ALL
    SELECT i.inv_key, n.list, n.name_zh, false, CASE WHEN n.name_key = i.name_key THEN 1 ELSE 2 END
    FROM inv i JOIN v_gb18218_names n ON n.name_key = i.name_key OR n.base_key = regexp_replace(i.name_key, '\([^()]*\)|\[[^\[\]]*\]', '', 'g')
    WHERE n.name_key = i.name_key OR NOT EXISTS (  -- 甲醛(37%) is not 甲醛(含量>90%): a not-name blocks the base-name match
        SELECT 1 FROM v_gb18218_not_names x WHERE x.name_zh = n.name_zh
        AND x.name_key IN (i.name_key, regexp_replace(i.name_key, '\([^()]*\)|\[[^\[\]]*\]', '', 'g')))
),
per_entry AS (
    SELECT h.inv_key, h.list, h.name_zh, bool_or(h.by_cas) AS any_cas, min(h.name_level) AS best_level,
           any_value(coalesce(t.critical_t, k.critical_t)) AS ref_q
    FROM hits h
    LEFT JOIN ref_gb18218_named t ON h.list = 'T1' AND t.name_zh = h.name_zh
    LEFT JOIN ref_gb18218_classified cl ON h.list = 'CLS' AND cl.name_zh = h.name_zh
    LEFT JOIN ref_gb18218_categories k ON k.category = cl.category
    GROUP BY h.inv_key, h.list, h.name_zh
),
best AS (  -- one reference entry per inventory row: CAS first, then the exact name, 表1 before the classification
    SELECT * FROM per_entry
    QUALIFY row_number() OVER (PARTITION BY inv_key ORDER BY any_cas DESC, best_level NULLS LAST,
                               list = 'T1' DESC, ref_q, name_zh) = 1
),
resolved AS (
    SELECT i.*, t.no AS gb18218_no, t.name_zh AS gb18218_name,
           CASE WHEN b.any_cas THEN 'CAS' WHEN b.best_level = 1 THEN '名称' WHEN b.best_level = 2 THEN '名称(去括号)' END
               AS matched_by,
           cl.category AS classified_category, cl.confidence AS classified_confidence,
           t.critical_t AS named_t, t.beta AS named_beta, t.confidence AS named_confidence,
           -- the typed category and the classified one: the lower Q (then the larger β)
           CASE WHEN c2.category IS NULL THEN c1.category WHEN c1.category IS NULL THEN c2.category
                WHEN c1.critical_t < c2.critical_t OR (c1.critical_t = c2.critical_t AND c1.beta >= c2.beta)
                THEN c1.category ELSE c2.category END AS category_used
    FROM inv i
    LEFT JOIN best b ON b.inv_key = i.inv_key
    LEFT JOIN ref_gb18218_named t ON b.list = 'T1' AND t.name_zh = b.name_zh
    LEFT JOIN ref_gb18218_classified cl ON b.list = 'CLS' AND cl.name_zh = b.name_zh
    LEFT JOIN ref_gb18218_categories c1 ON c1.category = i.category
    LEFT JOIN ref_gb18218_categories c2 ON c2.category = cl.category
)
SELECT r.site_id, r.unit_name, r.unit_kind, r.chemical, r.cas, r.category, r.max_quantity_t,
    r.gb18218_no, r.gb18218_name, r.matched_by, r.classified_category,
    CASE WHEN r.named_t IS NULL THEN r.category_used END AS category_used,
    r.critical_quantity_t AS declared_critical_t,
    coalesce(r.named_t, c.critical_t, r.critical_quantity_t) AS critical_t,
    CASE WHEN r.named_t IS NOT NULL THEN '表1'
         WHEN c.critical_t IS NOT NULL AND r.category_used = r.category THEN '表2(填报类别)'
         WHEN c.critical_t IS NOT NULL THEN '表2(参考分类)'
         WHEN r.critical_quantity_t IS NOT NULL THEN '企业申报(未核实)' END AS critical_source,
    CASE WHEN r.named_t IS NOT NULL THEN r.named_confidence
         WHEN c.critical_t IS NOT NULL AND r.category_used = r.category THEN c.confidence
         WHEN c.critical_t IS NOT NULL THEN r.classified_confidence
         WHEN r.critical_quantity_t IS NOT NULL THEN 'U' END AS critical_confidence,
    coalesce(r.named_beta, c.beta, 1.0) AS beta,
    r.max_quantity_t / coalesce(r.named_t, c.critical_t, r.critical_quantity_t) AS q_over_q,
    r.critical_quantity_t IS NOT NULL AND coalesce(r.named_t, c.critical_t) IS NOT NULL
        AND abs(r.critical_quantity_t - coalesce(r.named_t, c.critical_t)) > 1e-9 AS declared_q_differs,
    r.file_id, r.row_no  -- the inventory row it came from (its receipt names a chemical without a Q: rule H20)
FROM resolved r
LEFT JOIN ref_gb18218_categories c ON r.named_t IS NULL AND c.category = r.category_used;

CREATE OR REPLACE VIEW v_hazchem_units AS
SELECT u.*, coalesce(a.alpha, 2.0) AS alpha,   -- population unknown: the highest α (J, conservative)
       round(coalesce(a.alpha, 2.0) * u.sum_beta_q, 3) AS r_value, u.s_value >= 1 AS is_major
FROM (
    SELECT i.site_id, i.unit_name, any_value(i.unit_kind) AS unit_kind,
           coalesce(sum(i.q_over_q), 0) AS s_value, coalesce(sum(i.beta * i.q_over_q), 0) AS sum_beta_q,
           count(*) FILTER (WHERE i.critical_t IS NULL) AS chemicals_without_q,
           count(*) FILTER (WHERE i.critical_source = '企业申报(未核实)') AS chemicals_q_unverified,
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
           sum(chemicals_q_unverified) AS chemicals_q_unverified, sum(chemicals) AS chemicals
    FROM v_hazchem_units GROUP BY site_id
),
site_inventory AS (  -- what the enterprise declared against what the standard gives, and quantities to check
    SELECT site_id,
           string_agg(chemical || ' 申报Q ' || printf('%g', declared_critical_t) || ' t, ' || critical_source || ' Q '
                      || printf('%g', critical_t) || ' t',
                      '；' ORDER BY unit_name, chemical) FILTER (WHERE declared_q_differs) AS declared_q_differs,
           string_agg(unit_name || ' ' || chemical || ' ' || printf('%g', max_quantity_t) || ' t = '
                      || printf('%.0f', q_over_q) || '×Q',
                      '；' ORDER BY unit_name, chemical) FILTER (WHERE q_over_q > 1000) AS implausible_quantities,
           -- named by neither 表1 nor a category, and no Q declared: the site's S and R cannot be computed
           string_agg(chemical, '、' ORDER BY chemical) FILTER (WHERE critical_t IS NULL) AS chemicals_no_q_names,
           -- the sector whose major-accident-hazard criteria apply (the survey does not ask it; J): city gas = a
           -- 经营(带储存) site holding only natural gas or LPG; ammonia refrigeration = a 使用 site holding only ammonia
           count(*) > 0 AND bool_and(coalesce(gb18218_name IN ('甲烷，天然气', '液化石油气（含丙烷、丁烷及其混合物）'), false))
               AS only_fuel_gas,
           count(*) > 0 AND bool_and(coalesce(gb18218_name = '氨', false)) AS only_ammonia,
           -- 安监总管三〔2017〕121号 item 5: toxic gases (表3 β, or category J1/J3) and liquefied gases (a name
           -- beginning 液 or 液化, LPG, natural gas) held by the site (J: the survey has no physical state)
           string_agg(chemical, '、' ORDER BY chemical) FILTER (
               WHERE n.beta_basis LIKE '%表3%' OR i.category_used IN ('J1', 'J3')
                  OR i.chemical LIKE '液%' OR i.gb18218_name IN ('甲烷，天然气', '液化石油气（含丙烷、丁烷及其混合物）'))
               AS toxic_or_liquefied_gases
    FROM v_hazchem_inventory i
    LEFT JOIN (SELECT name_zh AS t1_name, beta_basis FROM ref_gb18218_named) n ON n.t1_name = i.gb18218_name
    GROUP BY site_id
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
    coalesce(g.chemicals_q_unverified, 0) AS chemicals_q_unverified,
    coalesce(g.chemicals, 0) AS chemicals,
    si.declared_q_differs, si.implausible_quantities, si.chemicals_no_q_names, si.toxic_or_liquefied_gases,
    CASE WHEN s.site_kind = '经营(带储存)' AND si.only_fuel_gas THEN '城镇燃气'
         WHEN s.site_kind = '使用' AND si.only_ammonia THEN '工贸涉氨制冷'
         ELSE '化工和危险化学品' END AS hazard_sector,
    t.design_pga_g, t.design_intensity AS site_design_intensity
FROM v_hazchem_sites_latest s
LEFT JOIN graded g USING (site_id)
LEFT JOIN site_inventory si USING (site_id)
LEFT JOIN ref_town_seismic t ON t.town_code = s.town_code;
