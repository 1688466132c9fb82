/**
 * onnxruntime 1.30 has telemetry on by default: every process writes `/tmp/mat-debug-<pid>.log`
 * and an event store under `~/.cache/Microsoft/DeveloperTools/`. Imported before
 * onnxruntime-node loads (first in every entry point), this turns it off unless the user set the
 * variable themselves.
 */
process.env.ORT_DISABLE_TELEMETRY ??= '1';
export {};
