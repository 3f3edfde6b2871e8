/**
 * A problem with the user's input. The CLI prints `message` as one line and exits non-zero,
 * without a stack trace. The message names the file, the line or field, and what was expected.
 */
export class InputError extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = "InputError";
  }
}
