"""Who and what the district knows, read from reference/ and schemas/: the units and survey rounds (units),
the survey templates (templates), the declared earthquakes (events), the portal's upload audit (uploads)."""
