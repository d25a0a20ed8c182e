"""asv (airspeed velocity) benchmarks: history of the library's speed across commits."""
