/** Errors of the training engine that say something about the request, not about the machine. */

/**
 * The spec cannot train on this data, whatever the machine: the model does not build, the class
 * counts differ, no sample is left for training, or a checkpoint does not fit the model. Retrying
 * cannot help (the worker fails the run at once).
 */
export class TrainingSetupError extends Error {
  override readonly name = 'TrainingSetupError';
}
