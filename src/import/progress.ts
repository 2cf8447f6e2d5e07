/**
 * One line per phase on the terminal: counts, percentage, rate. Redrawn in place on a TTY (at most
 * every 200 ms), a plain line every 10 s otherwise (a log file or CI).
 */
export class Progress {
  private done = 0;
  private started = Date.now();
  private lastDraw = 0;
  private phase = '';
  private total = 0;

  constructor(private readonly out: NodeJS.WriteStream = process.stderr) {}

  start(phase: string, total: number): void {
    this.phase = phase;
    this.total = total;
    this.done = 0;
    this.started = Date.now();
    this.lastDraw = 0;
    this.draw(true);
  }

  add(n: number): void {
    this.done += n;
    this.draw(false);
  }

  finish(): void {
    this.draw(true);
    if (this.out.isTTY) this.out.write('\n');
  }

  private draw(force: boolean): void {
    const now = Date.now();
    if (!force && now - this.lastDraw < (this.out.isTTY ? 200 : 10_000)) return;
    this.lastDraw = now;
    const seconds = Math.max((now - this.started) / 1000, 0.001);
    const share = this.total > 0 ? Math.min(this.done / this.total, 1) : 1;
    const width = 24;
    const bar = '#'.repeat(Math.round(share * width)).padEnd(width, '.');
    const line = `${this.phase.padEnd(9)} [${bar}] ${this.done.toLocaleString('en')}/${this.total.toLocaleString('en')} (${(share * 100).toFixed(1)}%) ${Math.round(this.done / seconds).toLocaleString('en')}/s`;
    this.out.write(this.out.isTTY ? `\r${line}` : `${line}\n`);
  }
}
