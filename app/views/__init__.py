"""The central views: segmentation, pyramid inspector, heads comparison."""
