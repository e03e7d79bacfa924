-- v_buildings: the latest survey of every building, with the derived quantities the rules read.
-- Screening score S in the manner of FEMA P-154 (3rd ed., 2015), high seismicity:
--   S = max(basic + adjustment + Σ modifiers, minimum)   (rules-reference §1, S)
CREATE OR REPLACE VIEW v_buildings AS
WITH latest AS (
    SELECT * FROM stg_buildings
    QUALIFY row_number() OVER (PARTITION BY building_id
                               ORDER BY survey_round DESC, survey_date DESC, source_file DESC, row_no DESC) = 1
),
typed AS (
    SELECT b.*,
        coalesce(m_exact.fema_type, m_any.fema_type, 'URM') AS fema_type,
        coalesce(m_exact.basic_adjustment, m_any.basic_adjustment, 0.0) AS basic_adjustment,
        t.design_pga_g, t.design_intensity AS site_design_intensity, t.verified AS town_params_verified,
        b.structure_type IN ('砖混', '砖木', '石木', '混杂结构', '土木(生土)', '窑洞') AS is_masonry,
        coalesce(b.height_m > CASE WHEN b."use" = '住宅' THEN 27 ELSE 24 END, b.floors_above >= 10) AS is_high_rise,
        b."use" IN ('学校', '幼儿园', '医院', '养老机构') AS is_key_fortification,
        year(b.survey_date) - b.year_built AS age_years,
        TRY_CAST(nullif(b.design_intensity, '不设防') AS DOUBLE) AS design_intensity_num
    FROM latest b
    LEFT JOIN ref_town_seismic t ON t.town_code = b.town_code
    LEFT JOIN ref_structure_type_map m_exact
        ON m_exact.structure_type = b.structure_type
       AND m_exact.ring_beam_tie_column = CASE b.ring_beam_tie_column WHEN true THEN '是' WHEN false THEN '否' END
    LEFT JOIN ref_structure_type_map m_any
        ON m_any.structure_type = b.structure_type AND m_any.ring_beam_tie_column IS NULL
)
SELECT typed.*,
    p.basic + typed.basic_adjustment AS p154_basic,
    p.minimum AS p154_minimum,
    CASE typed.vertical_irregularity WHEN '严重' THEN p.vert_severe WHEN '中等' THEN p.vert_moderate ELSE 0 END
      + CASE WHEN typed.plan_irregularity THEN p.plan_irregular ELSE 0 END
      + CASE WHEN typed.year_built < 1990 AND NOT coalesce(typed.retrofitted, false) THEN p.pre_code ELSE 0 END
      + CASE WHEN typed.year_built >= 2001 AND typed.seismic_design = '是' THEN p.post_benchmark ELSE 0 END
      + CASE WHEN typed.site_class IN ('I0', 'I1') THEN p.soil_ab
             WHEN typed.site_class = 'IV' AND typed.floors_above <= 3 THEN p.soil_e_low
             WHEN typed.site_class = 'IV' THEN p.soil_e_high ELSE 0 END AS p154_modifiers,
    round(greatest(p.basic + typed.basic_adjustment + p154_modifiers, p.minimum), 2) AS screening_score
FROM typed
LEFT JOIN ref_p154_scores p ON p.fema_type = typed.fema_type;
