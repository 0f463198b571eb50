"""Developer tools that are not part of the service (data recipes, one-off measurements)."""
