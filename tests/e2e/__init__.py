"""End-to-end tests on the lab: several engines, agents, a controller and an edge proxy."""
