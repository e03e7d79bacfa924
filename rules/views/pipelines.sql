-- v_pipelines: the latest survey of every segment, with ALA (2001) repair-rate figures (rules-reference §4, S/U)
--   and the fault crossing's GB/T 50470-2017 design status.
--   wave passage RR = K1 · 0.00187 · PGV  repairs per 1000 ft, PGV in in/s
CREATE OR REPLACE VIEW v_pipelines AS
WITH latest AS (
    SELECT * FROM stg_pipelines
    QUALIFY row_number() OVER (PARTITION BY segment_id
                               ORDER BY survey_round DESC, survey_date DESC, source_file DESC, row_no DESC) = 1
),
joined AS (
    SELECT p.*,
        split_part(p.town_codes, ';', 1) AS first_town_code,
        p.medium IN ('天然气', '液化石油气') AS is_gas,
        year(p.survey_date) - p.year_built AS age_years,
        date_diff('day', p.last_ili, p.survey_date) / 365.25 AS years_since_ili,
        coalesce(k_exact.k1_small, k_any.k1_small, 1.0) AS k1_small,
        coalesce(k_exact.k1_large, k_any.k1_large, 1.0) AS k1_large
    FROM latest p
    LEFT JOIN ref_ala_k1 k_exact ON k_exact.material = p.material AND k_exact.joint_type = coalesce(p.joint_type, '焊接')
    LEFT JOIN ref_ala_k1 k_any ON k_any.material = p.material AND k_any.joint_type IS NULL
)
SELECT j.*,
    t.design_pga_g, t.pgv_m_s,
    CASE WHEN j.diameter_mm / 25.4 >= 16 THEN j.k1_large ELSE j.k1_small END AS ala_k1,
    round(ala_k1 * 0.00187 * (t.pgv_m_s / 0.0254), 5) AS repair_rate_per_kft,
    round(repair_rate_per_kft * j.length_km * 3.28084, 4) AS expected_repairs_wave,
    -- Fault crossing: designed or verified to GB/T 50470-2017 (是/否/不详); a crossing left blank counts as 不详 (J).
    -- The offset (fault_offset_m, metres, GB/T 50470-2017 §5.1.7) is evidence only: no offset bins are applied,
    -- the no-failure bins of the simplified O'Rourke model have no unit we can cite (issue 10 §3).
    CASE WHEN j.fault_crossing THEN coalesce(j.fault_seismic_design, '不详') END AS fault_design_status
FROM joined j
LEFT JOIN ref_town_seismic t ON t.town_code = j.first_town_code;
