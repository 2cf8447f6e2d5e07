import { parse as parseYaml } from 'yaml';

/**
 * JSON.parse keeps the last of two equal keys without a word; strict ingesters (Elasticsearch)
 * refuse the document. JSON is YAML 1.2, and the yaml library's uniqueKeys check (on by default)
 * rejects a repeated key, so a line must pass both: JSON's syntax and YAML's uniqueness.
 */
export function parseStrictJson(line: string): Record<string, unknown> {
  const value = JSON.parse(line) as unknown;
  parseYaml(line, { schema: 'json', uniqueKeys: true, strict: true });
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`not a JSON object: ${line.slice(0, 200)}`);
  return value as Record<string, unknown>;
}

/** Every line of a process's output as a strictly parsed log record; throws naming the first bad line. */
export function strictLogLines(output: string): Record<string, unknown>[] {
  return output
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line, i) => {
      try {
        return parseStrictJson(line);
      } catch (err) {
        throw new Error(`log line ${i + 1} is not strict JSON (${(err as Error).message.split('\n')[0]}):\n${line.slice(0, 500)}`);
      }
    });
}
