"""Step 2: renderers that turn semantic masks (and a grade) into fundus photographs."""
