/**
 * Reads a text/event-stream response to its end (or until `until` has passed, checked between
 * chunks), calling onEvent for each event that has both an event name and JSON data.
 */
export async function forEachSseEvent(res: Response, onEvent: (e: { event: string; data: any }) => void, until = Infinity): Promise<void> {
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  while (Date.now() < until) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.+)$/m.exec(block)?.[1];
      const data = /^data: (.+)$/m.exec(block)?.[1];
      if (event && data) onEvent({ event, data: JSON.parse(data) });
    }
  }
}

/** The public statuses a video-events stream carried, with when each arrived. */
export async function sseStatuses(res: Response, into: Map<string, number> = new Map()): Promise<Map<string, number>> {
  await forEachSseEvent(res, (e) => {
    if (e.event === 'status') into.set(e.data.status, Date.now());
  });
  return into;
}
