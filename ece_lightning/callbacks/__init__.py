"""Lightning callbacks shared by the task modules (ECE annealing and loss dynamics join later)."""
