"""rlhf_diag's asv benchmarks: one module per domain, peers beside ours."""
