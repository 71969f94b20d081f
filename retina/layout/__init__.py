"""Step 1: grade-conditioned semantic layout (mask) generators."""
