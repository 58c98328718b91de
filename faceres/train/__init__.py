"""Training one arm: the step (loop.Trainer) and its loop (loop.train_arm), the batches and their online
degradations (data), adversarial augmentation (augment), processes and devices (distributed, launch, process,
precision), logging (logs), the objective (losses), the run cache with its checkpoints (runcache, checkpoint) and the
run's file names (outputs)."""
