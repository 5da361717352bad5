"""ml_collections configs, one per procedure: ``get_config(preset)`` with preset quick / cpu / full."""
