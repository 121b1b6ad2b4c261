"""Code repair and SWE tasks in sandboxes, with outcome ladders for gated rewards."""
