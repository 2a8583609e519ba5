// The one check of a network config that `weft network set` and the daemon share (src/backend/config.ts):
// flannel's fields, a Backend.Type some datapath carries, and its options, for one datapath (a daemon) or for every
// datapath that carries the type (`network set`). A type from an encap module is known once the module is loaded.
import { join } from 'node:path';
import t from 'tap';
import { checkNetworkConfig, type Runner } from '../src/backend/config.js';
import { loadEncapModule } from '../src/backend/encap-module.js';
import { NetworkConfigError } from '../src/errors.js';
import { PACKAGE_ROOT } from '../testbed/cluster.js';

const MODULE = join(PACKAGE_ROOT, 'dist', 'src', 'encap', 'example-xor.js');
const USERSPACE: Runner = { datapath: 'userspace' };
const KERNEL: Runner = { datapath: 'kernel' };

function refusal(backend: Record<string, unknown>, runner?: Runner): string | null {
  try {
    checkNetworkConfig(JSON.stringify({ Network: '10.5.0.0/16', Backend: backend }), runner);
    return null;
  } catch (e) {
    if (!(e instanceof NetworkConfigError)) throw e;
    return e.message;
  }
}

t.test('backend options are checked, for every datapath that carries the type', async (t) => {
  const refused: [Record<string, unknown>, Runner | undefined, RegExp][] = [
    [{ Type: 'udp', Port: 70000 }, undefined, /^network config: Backend\.Port 70000: not a UDP port$/],
    [{ Type: 'udp', Port: '8285' }, undefined, /Backend\.Port "8285": not a UDP port/],
    [{ Type: 'vxlan', VNI: 'x' }, undefined, /^network config: Backend\.VNI "x": not a 24-bit VNI$/],
    [{ Type: 'geneve', VNI: 1 << 24 }, undefined, /Backend\.VNI 16777216: not a 24-bit VNI/],
    [{ Type: 'vxlan', DirectRouting: 'yes' }, undefined, /Backend\.DirectRouting "yes": not true or false/],
    [{ Type: 'vxlan', DirectRouting: 'yes' }, KERNEL, /Backend\.DirectRouting "yes"/],
    [{ Type: 'nope' }, undefined, /^network config: Backend\.Type "nope": no such backend \(built in: udp, vxlan/],
    [{ Type: 'nope' }, USERSPACE, /Backend\.Type "nope": no such backend/],
    [{ Type: 'host-gw' }, USERSPACE, /Backend\.Type "host-gw": no userspace datapath: run with --datapath kernel/],
    [{ Type: 'geneve' }, KERNEL, /Backend\.Type "geneve": no kernel datapath .*: run with --datapath userspace/],
  ];
  for (const [backend, runner, re] of refused) {
    t.match(refusal(backend, runner), re, `${JSON.stringify(backend)} for ${runner?.datapath ?? 'any datapath'}`);
  }
  const accepted: [Record<string, unknown>, Runner | undefined][] = [
    [{ Type: 'udp', Port: 8285 }, undefined],
    [{ Type: 'vxlan', VNI: 4, Port: 4789, DirectRouting: true }, undefined],
    [{ Type: 'host-gw' }, undefined],
    [{ Type: 'host-gw' }, KERNEL],
    [{ Type: 'geneve', VNI: 7 }, USERSPACE],
    // The userspace datapath reads no DirectRouting: only a kernel host would refuse it.
    [{ Type: 'vxlan', DirectRouting: 'yes' }, USERSPACE],
  ];
  for (const [backend, runner] of accepted) {
    t.equal(refusal(backend, runner), null, `${JSON.stringify(backend)} for ${runner?.datapath ?? 'any datapath'}`);
  }
});

t.test("flannel's fields come first, with parseNetworkConfig's messages", async (t) => {
  t.throws(() => checkNetworkConfig('{"Network":"10.5.0.0/16","SubnetLen":31}'), /SubnetLen 31: must be at most 30/);
  t.same(checkNetworkConfig('{"Network":"10.5.0.0/16"}').backend, { Type: 'udp' }, 'Type defaults to udp');
});

t.test('an IPv6-only network runs on the kernel datapath only (the userspace tiers forward IPv4 only)', async (t) => {
  const v6only = JSON.stringify({
    EnableIPv4: false,
    EnableIPv6: true,
    IPv6Network: 'fd00:5::/48',
    Backend: { Type: 'vxlan' },
  });
  t.throws(
    () => checkNetworkConfig(v6only, { datapath: 'userspace' }),
    /^network config: EnableIPv4 false: an IPv6-only network needs --datapath kernel/,
    'refused for a userspace daemon',
  );
  t.equal(checkNetworkConfig(v6only, KERNEL).enableIPv4, false, 'run by a kernel daemon');
  t.equal(checkNetworkConfig(v6only).ipv6Network, 'fd00:5::/48', 'accepted by network set (a kernel host runs it)');
});

t.test("an encap module's type is known once the module is loaded, as in the daemon", async (t) => {
  t.match(refusal({ Type: 'xor-example' }), /Backend\.Type "xor-example": no such backend .*--encap-module <file>/);
  await loadEncapModule(MODULE);
  t.equal(refusal({ Type: 'xor-example' }), null, 'accepted once loaded');
  t.match(refusal({ Type: 'xor-example', Port: 0 }), /Backend\.Port 0: not a UDP port/, 'its options are checked');
  t.match(refusal({ Type: 'xor-example' }, KERNEL), /no kernel datapath/, 'userspace only');
});
