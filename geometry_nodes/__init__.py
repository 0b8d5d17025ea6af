"""Node-tree builders: every geometry-nodes group and shader material nnvis creates, as Python."""
