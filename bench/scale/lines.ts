// A tiny JSON-lines request/response channel between the scale tool and its helpers in other namespaces (the
// loader next to etcd, one prober per real host): requests carry an id, answers echo it, one line each.
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { WeftError, errorMessage } from '../../src/errors.js';

export type Json = Record<string, unknown>;

/** Helper side: answer each request line on stdout; a handler error becomes `{ id, error }`. */
export function serveLines(handle: (req: Json) => Promise<Json>): void {
  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    let req: Json;
    try {
      req = JSON.parse(line) as Json;
    } catch {
      process.stdout.write(JSON.stringify({ id: null, error: 'unparsable request line' }) + '\n');
      return;
    }
    handle(req).then(
      (res) => process.stdout.write(JSON.stringify({ ...res, id: req.id }) + '\n'),
      (e: unknown) => process.stdout.write(JSON.stringify({ id: req.id, error: errorMessage(e) }) + '\n'),
    );
  });
  // The parent went away: nothing left to serve.
  rl.on('close', () => process.exit(0));
}

/** Parent side over a spawned helper (stdio pipes). Requests may overlap; each is bounded by timeoutMs. */
export class LineClient {
  private next = 1;
  private readonly pending = new Map<
    number,
    { resolve: (v: Json) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }
  >();
  private stderrTail = '';

  constructor(
    readonly child: ChildProcess,
    readonly name: string,
  ) {
    const rl = createInterface({ input: child.stdout! });
    rl.on('line', (line) => {
      let res: Json;
      try {
        res = JSON.parse(line) as Json;
      } catch {
        return; // a stray log line
      }
      const p = typeof res.id === 'number' ? this.pending.get(res.id) : undefined;
      if (p === undefined) return;
      this.pending.delete(res.id as number);
      clearTimeout(p.timer);
      if (typeof res.error === 'string') p.reject(new WeftError('WEFT_ERR_BACKEND', `${name}: ${res.error}`));
      else p.resolve(res);
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => {
      this.stderrTail = (this.stderrTail + d).slice(-2000);
    });
    child.once('exit', (code, sig) => {
      for (const [, p] of this.pending) {
        clearTimeout(p.timer);
        p.reject(new WeftError('WEFT_ERR_BACKEND', `${name} exited (${code ?? sig}): ${this.stderrTail.trim()}`));
      }
      this.pending.clear();
    });
  }

  request(req: Json, timeoutMs = 60_000): Promise<Json> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new WeftError('WEFT_ERR_BACKEND', `${this.name}: no answer to ${String(req.op)} within ${timeoutMs} ms`),
        );
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.child.stdin!.write(JSON.stringify({ ...req, id }) + '\n');
    });
  }

  close(): void {
    this.child.stdin?.end();
  }
}
