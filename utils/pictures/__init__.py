"""Pictures: metric plots, planes through state space with their exact partitions, and their drawing."""
