"""Cell-type scores from the shipped markers and the composition of each contrast's samples."""
