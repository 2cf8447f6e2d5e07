import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A real HTTP server on 127.0.0.1 for fakes of external services. */

export interface FakeRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export interface FakeResponse {
  status: number;
  body?: string;
  headers?: Record<string, string>;
  /** The request was handled but its answer is lost: never sent ('hang') or the connection reset ('reset'). */
  lost?: 'hang' | 'reset';
}

export interface Fault {
  status: number;
  body?: string;
  headers?: Record<string, string>;
  /** How many requests it affects; Infinity until cleared. */
  times: number;
  /** Delay before answering (or never, with Infinity: the client must time out). */
  delayMs?: number;
}

/** A request held at a gate (FakeHttpServer.gate): it is answered normally once released. */
export interface Gate {
  /** Resolves with the request once one matching the gate has arrived and is being held. */
  readonly reached: Promise<FakeRequest>;
  /** Lets the held request (or, if none arrived yet, the next matching one) through. */
  release(): void;
}

export class FakeHttpServer {
  private server: http.Server;
  private faults: { match: RegExp; fault: Fault }[] = [];
  private gates: { match: RegExp; arrived: (req: FakeRequest) => void; released: Promise<void>; release: () => void; used: boolean }[] = [];
  readonly requests: FakeRequest[] = [];
  url = '';

  constructor(private readonly handler: (req: FakeRequest) => Promise<FakeResponse> | FakeResponse) {
    this.server = http.createServer((req, res) => void this.handle(req, res));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  async stop(): Promise<void> {
    for (const g of this.gates) g.release();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Answer requests whose path matches with this fault, `times` times. */
  inject(path: RegExp, fault: Partial<Fault> & { status?: number }): void {
    this.faults.push({ match: path, fault: { status: 500, times: 1, ...fault } });
  }

  clearFaults(): void {
    this.faults = [];
  }

  /**
   * Holds the next request whose path matches until the test calls release(): the test can make
   * something else happen while the server under test waits for this answer (then answered as
   * usual: by a fault if one matches, else by the fake's handler). One request per gate.
   */
  gate(path: RegExp): Gate {
    let arrived!: (req: FakeRequest) => void;
    let release!: () => void;
    const reached = new Promise<FakeRequest>((resolve) => (arrived = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    this.gates.push({ match: path, arrived, released, release, used: false });
    return { reached, release };
  }

  calls(path: RegExp): FakeRequest[] {
    return this.requests.filter((r) => path.test(r.path));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse) {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const request: FakeRequest = { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
    this.requests.push(request);
    const gate = this.gates.find((g) => !g.used && g.match.test(request.path));
    if (gate) {
      gate.used = true;
      gate.arrived(request);
      await gate.released;
    }
    const f = this.faults.find((x) => x.match.test(request.path) && x.fault.times > 0);
    let answer: FakeResponse;
    if (f) {
      f.fault.times--;
      if (f.fault.delayMs === Infinity) return; // never answers; the client's timeout must fire
      if (f.fault.delayMs) await new Promise((r) => setTimeout(r, f.fault.delayMs));
      answer = { status: f.fault.status, body: f.fault.body ?? '', headers: f.fault.headers };
    } else {
      answer = await this.handler(request);
    }
    if (answer.lost === 'hang') return;
    if (answer.lost === 'reset') return void res.socket?.destroy();
    res.writeHead(answer.status, answer.headers ?? {});
    res.end(answer.body ?? '');
  }
}
