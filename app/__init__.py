"""PSPNet Studio's window (Qt): views, docks, workers. Reaches the engine only through ``core``."""
