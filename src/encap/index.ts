// Encaps by name. A backend config's Type picks one ("udp" is flannel's default).
import type { Encap } from './encap.js';
import { geneveEncap } from './geneve.js';
import { udpEncap } from './udp.js';
import { vxlanEncap } from './vxlan.js';

const registry = new Map<string, Encap>([udpEncap, vxlanEncap, geneveEncap].map((e) => [e.name, e]));

export function registerEncap(encap: Encap): void {
  registry.set(encap.name, encap);
}

export function encapByName(name: string): Encap | undefined {
  return registry.get(name);
}

export type { Encap } from './encap.js';
