import net from 'node:net';

/**
 * A TCP proxy on 127.0.0.1 in front of a server (PostgreSQL here) that can stall the connections it
 * carries: what the client sends is held (not lost) until `resume()`, as on a congested or briefly
 * broken network path, while the client's socket stays open. New connections are carried at once.
 */
export interface TcpProxy {
  port: number;
  /** Holds what the open connections send. */
  stall(): void;
  /** Lets the held bytes through. */
  resume(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(upstream: { host: string; port: number }): Promise<TcpProxy> {
  const open = new Set<{ client: net.Socket; server: net.Socket }>();
  const proxy = net.createServer((client) => {
    const server = net.connect(upstream.port, upstream.host);
    const pair = { client, server };
    open.add(pair);
    client.pipe(server);
    server.pipe(client);
    const done = () => {
      open.delete(pair);
      client.destroy();
      server.destroy();
    };
    client.on('error', done).on('close', done);
    server.on('error', done).on('close', done);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const stalled: net.Socket[] = [];
  return {
    port: (proxy.address() as net.AddressInfo).port,
    stall() {
      for (const { client } of open) {
        client.unpipe();
        client.pause();
        stalled.push(client);
      }
    },
    resume() {
      for (const client of stalled.splice(0)) {
        const pair = [...open].find((p) => p.client === client);
        if (pair) client.pipe(pair.server);
        client.resume();
      }
    },
    async close() {
      for (const { client, server } of open) {
        client.destroy();
        server.destroy();
      }
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    },
  };
}
