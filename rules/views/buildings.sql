-- v_buildings: the latest survey of every building, with the derived quantities the rules read.
-- Screening score S in the manner of FEMA P-154 (3rd ed., 2015), Level 1, high seismicity:
--   S = max(basic + adjustment + Σ modifiers, minimum)   (rules-reference §1, S; table ref_p154_scores)
-- A modifier the form marks NA (empty in the table) adds nothing. S ranks the appraisal worklist
-- (待鉴定清单); it opens no hazard.
-- Site intensity is kept at half-degree resolution: 7.5 = 7度(0.15g), 8.5 = 8度(0.30g) (GB 50011-2010
-- Table 3.2.2); the masonry storey and height limits are GB 50011-2010 Table 7.1.2 at the site's PGA.
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
        -- a bottom-frame masonry building is a soft storey whatever the surveyor ticked
        CASE WHEN coalesce(m_exact.forced_vertical_irregularity, m_any.forced_vertical_irregularity) = '严重'
                  OR b.vertical_irregularity = '严重' THEN '严重'
             ELSE b.vertical_irregularity END AS p154_vertical_irregularity,
        t.design_pga_g, t.design_intensity::DOUBLE AS site_design_intensity, t.intensity_zh AS site_intensity_zh,
        t.verified AS town_params_verified,
        b.structure_type IN ('砖混', '砖木', '石木', '混杂结构', '土木(生土)', '窑洞', '底部框架-抗震墙') AS is_masonry,
        CASE b.structure_type WHEN '砖混' THEN '多层砌体房屋' WHEN '底部框架-抗震墙' THEN '底部框架-抗震墙砌体房屋' END
            AS masonry_category,
        coalesce(b.height_m > CASE WHEN b."use" = '住宅' THEN 27 ELSE 24 END, b.floors_above >= 10) AS is_high_rise,
        -- key objects of the earthquake response (待鉴定清单 一类): schools, kindergartens, hospitals, elderly homes
        b."use" IN ('学校', '幼儿园', '医院', '养老机构') AS is_key_fortification,
        -- 乙类 (重点设防类), GB 50223-2008 §4.0.3 (二、三级医院 clinical buildings) and §6.0.8 (幼儿园、中小学
        -- teaching, dormitory and canteen buildings) (clause numbers U, from memory): the survey records neither the hospital's
        -- grade nor the building's function on a campus, so every school, kindergarten and hospital building is
        -- taken as 乙类 (J, errs high); an elderly home is not 乙类
        b."use" IN ('学校', '幼儿园', '医院') AS is_class_b,
        b."use" IN ('学校', '幼儿园', '医院', '养老机构', '商业', '宗教') AS is_crowded_place,
        year(b.survey_date) - b.year_built AS age_years,
        TRY_CAST(nullif(b.design_intensity, '不设防') AS DOUBLE) AS design_intensity_num
    FROM latest b
    LEFT JOIN ref_town_seismic t ON t.town_code = b.town_code
    LEFT JOIN ref_structure_type_map m_exact
        ON m_exact.structure_type = b.structure_type
       AND m_exact.ring_beam_tie_column = CASE b.ring_beam_tie_column WHEN true THEN '是' WHEN false THEN '否' END
    LEFT JOIN ref_structure_type_map m_any
        ON m_any.structure_type = b.structure_type AND m_any.ring_beam_tie_column IS NULL
),
limited AS (
    -- GB 50011-2010 Table 7.1.2, note 3: a 乙类 (is_class_b) multi-storey masonry building has
    -- one storey less and 3 m less than the table, and must not be a bottom-frame masonry building
    SELECT typed.*,
        ml.max_storeys - CASE WHEN typed.is_class_b THEN 1 ELSE 0 END AS masonry_max_storeys,
        ml.max_height_m - CASE WHEN typed.is_class_b THEN 3 ELSE 0 END AS masonry_max_height_m,
        ml.allowed AND NOT (typed.is_class_b AND typed.masonry_category = '底部框架-抗震墙砌体房屋')
            AS masonry_type_allowed
    FROM typed
    LEFT JOIN ref_masonry_limits ml
        ON ml.masonry_category = typed.masonry_category AND round(ml.design_pga_g, 2) = round(typed.design_pga_g, 2)
)
SELECT limited.*,
    -- Table 7.1.2 notes: the height is to the main roof (板顶 or 檐口), and may exceed the table by less than
    -- 1.0 m where the indoor floor is over 0.6 m above the outside ground; the survey's 建筑高度 records neither
    -- the roof it was taken to nor that difference, so a height is over the limit from the limit + 1 m (S)
    masonry_category IS NOT NULL AND (NOT masonry_type_allowed OR floors_above > masonry_max_storeys
                                      OR height_m >= masonry_max_height_m + 1) AS exceeds_masonry_limit,
    p.basic + limited.basic_adjustment AS p154_basic,
    p.minimum AS p154_minimum,
    CASE limited.p154_vertical_irregularity WHEN '严重' THEN coalesce(p.vert_severe, 0)
                                            WHEN '中等' THEN coalesce(p.vert_moderate, 0) ELSE 0 END
      + CASE WHEN limited.plan_irregularity THEN coalesce(p.plan_irregular, 0) ELSE 0 END
      + CASE WHEN limited.year_built < 1990 AND NOT coalesce(limited.retrofitted, false)
             THEN coalesce(p.pre_code, 0) ELSE 0 END
      + CASE WHEN limited.year_built >= 2001 AND limited.seismic_design = '是'
             THEN coalesce(p.post_benchmark, 0) ELSE 0 END
      + CASE WHEN limited.site_class IN ('I0', 'I1') THEN coalesce(p.soil_ab, 0)
             WHEN limited.site_class = 'IV' AND limited.floors_above <= 3 THEN coalesce(p.soil_e_low, 0)
             WHEN limited.site_class = 'IV' THEN coalesce(p.soil_e_high, 0) ELSE 0 END AS p154_modifiers,
    round(greatest(p.basic + limited.basic_adjustment + p154_modifiers, p.minimum), 2) AS screening_score
FROM limited
LEFT JOIN ref_p154_scores p ON p.fema_type = limited.fema_type;
