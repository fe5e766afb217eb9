/**
 * One small structured logger: JSON lines with a level and an event name. Never pass personal
 * data or tokens in fields; routes log redacted paths only.
 */
export type LogFields = Record<string, unknown>;

export interface Logger {
  info(event: string, fields?: LogFields): void;
  warn(event: string, fields?: LogFields): void;
  /** `cause`, when given, is printed as its chain of error messages. */
  error(event: string, fields?: LogFields): void;
}

function describeCause(cause: unknown): string | undefined {
  if (cause === undefined) return undefined;
  const parts: string[] = [];
  let current: unknown = cause;
  while (current instanceof Error && parts.length < 5) {
    parts.push(`${current.name}: ${current.message}`);
    current = current.cause;
  }
  if (parts.length === 0) parts.push(String(cause));
  return parts.join(' <- ');
}

function write(level: string, event: string, fields: LogFields = {}): void {
  const { cause, ...rest } = fields;
  const line = JSON.stringify({ level, event, ...rest, cause: describeCause(cause) });
  // The single console call site of the app.
  if (level === 'error') console.error(line);
  else console.log(line);
}

export const logger: Logger = {
  info: (event, fields) => write('info', event, fields),
  warn: (event, fields) => write('warn', event, fields),
  error: (event, fields) => write('error', event, fields),
};

/** The no-op twin, for tests that want silence. */
export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
