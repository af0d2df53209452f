"""Object-detection data: box checks and readers, tiling, the detection dataset and DataModules."""
