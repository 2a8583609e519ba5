// The per-container record of what ADD delegated, so DEL (and CHECK, GC) hand the delegate the very config it was
// added with, even after subnet.env changed or is gone. One file per container, named by its ID, in dataDir (as
// flannel's plugin keeps /var/lib/cni/flannel/<id>). Written atomically; readers never see half a file.
import { mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { CniCode, CniError } from './spec.js';
import type { DelegateConf } from './config.js';

export interface StoredAttachment {
  /** CNI_IFNAME at ADD: GC needs it to release host-local's reservation, which is keyed by ID and interface. */
  ifName: string;
  delegate: DelegateConf;
}

const recordSchema = z.object({
  ifName: z.string().min(1),
  delegate: z.object({ type: z.string().min(1), cniVersion: z.string(), name: z.string() }).loose(),
});

// Container IDs are checked by requireEnv before they get here; GC lists names, so check again on that path.
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

export class AttachmentStore {
  constructor(readonly dir: string) {}

  private path(containerId: string): string {
    if (!FILE_NAME.test(containerId))
      throw new CniError(CniCode.InvalidEnvironment, `invalid container ID ${JSON.stringify(containerId)}`);
    return join(this.dir, containerId);
  }

  async save(containerId: string, rec: StoredAttachment): Promise<void> {
    const path = this.path(containerId);
    const tmp = join(this.dir, `.${containerId}.${process.pid}.tmp`);
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      await writeFile(tmp, JSON.stringify(rec), { mode: 0o600 });
      await rename(tmp, path);
    } catch (e) {
      await rm(tmp, { force: true });
      throw new CniError(
        CniCode.IoFailure,
        `cannot store the delegate config in ${this.dir}`,
        e instanceof Error ? e.message : '',
      );
    }
  }

  /** Null when there is no record (never added, or already deleted); CniError 5 when it is unreadable. */
  async load(containerId: string): Promise<StoredAttachment | null> {
    const path = this.path(containerId);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw new CniError(CniCode.IoFailure, `cannot read ${path}`, e instanceof Error ? e.message : '');
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      raw = undefined;
    }
    const r = recordSchema.safeParse(raw);
    if (!r.success) throw new CniError(CniCode.IoFailure, `${path} is not a weft-cni record`);
    return { ifName: r.data.ifName, delegate: r.data.delegate as DelegateConf };
  }

  async remove(containerId: string): Promise<void> {
    await rm(this.path(containerId), { force: true });
  }

  /** Container IDs with a record; [] when the directory does not exist. */
  async list(): Promise<string[]> {
    try {
      return (await readdir(this.dir)).filter((f) => FILE_NAME.test(f));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw new CniError(CniCode.IoFailure, `cannot list ${this.dir}`, e instanceof Error ? e.message : '');
    }
  }
}
