"""Jobs: each module wires the domain and io layers for one command; no maths of its own."""
