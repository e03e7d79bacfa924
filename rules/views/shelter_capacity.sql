-- v_shelter_capacity: per town, the capacity of its usable shelters (each counted at most at its effective area's
-- capacity, v_shelters) against the people to shelter: its population (rules/reference/town_population.csv) times
-- the share to shelter (rules/reference/shelter_need.csv, U). One row per town once any shelter has been surveyed
-- (before that there is no figure to hold against anyone); the town's government answers for it.
-- Positions are rounded: a float average depends on the order rows are summed, and a re-run must give the same row.
CREATE OR REPLACE VIEW v_shelter_capacity AS
WITH s AS (SELECT * FROM v_shelters),
last_survey AS (
    SELECT max(survey_round) AS survey_round, max(survey_date) AS survey_date, max(source_file) AS source_file,
           round(avg(lon), 6) AS lon, round(avg(lat), 6) AS lat  -- a town without a shelter is placed at the district's shelters' centre
    FROM s
), per_town AS (
    SELECT town_code, count(*) AS shelters, count(*) FILTER (WHERE usable) AS usable_shelters,
           coalesce(sum(counted_capacity) FILTER (WHERE usable), 0) AS usable_capacity,
           max(survey_round) AS survey_round, max(survey_date) AS survey_date, max(source_file) AS source_file
    FROM s GROUP BY town_code
)
SELECT p.town_code::VARCHAR AS town_code, p.town_name, p.town_name || '应急避难场所容量' AS name, p.unit_code AS responsible_unit,
    p.population, n.value AS need_share, round(p.population * n.value)::BIGINT AS people_to_shelter,
    coalesce(t.shelters, 0) AS shelters, coalesce(t.usable_shelters, 0) AS usable_shelters,
    coalesce(t.usable_capacity, 0)::BIGINT AS usable_capacity,
    round(coalesce(t.usable_capacity, 0) / (p.population * n.value), 3) AS capacity_ratio,
    round(p.population * n.value)::BIGINT - coalesce(t.usable_capacity, 0)::BIGINT AS capacity_gap,
    coalesce(t.survey_round, l.survey_round) AS survey_round, coalesce(t.survey_date, l.survey_date) AS survey_date,
    coalesce(t.source_file, l.source_file) AS source_file, 'YJJ' AS department,
    coalesce(c.lon, l.lon) AS lon, coalesce(c.lat, l.lat) AS lat
FROM ref_town_population p
CROSS JOIN (SELECT value FROM ref_shelter_need WHERE parameter = 'need_share') n
CROSS JOIN last_survey l
LEFT JOIN per_town t ON t.town_code = p.town_code::VARCHAR
LEFT JOIN (SELECT town_code, round(avg(lon), 6) AS lon, round(avg(lat), 6) AS lat FROM s GROUP BY town_code) c ON c.town_code = p.town_code::VARCHAR
WHERE l.survey_round IS NOT NULL;
