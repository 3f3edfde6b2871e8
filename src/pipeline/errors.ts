/** A run that cannot go on with these inputs and parameters (one line for the user). */
export class PipelineError extends Error {
  override name = "PipelineError";
}
