"""Local emulators of provider wire formats, shared by tests and benchmarks."""
