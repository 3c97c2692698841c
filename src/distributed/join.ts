/**
 * A rank process joining its job (started by ./launcher.ts or by hand with torchrun's
 * variables): the rendezvous, then the communicator the active backend's device supports —
 * NCCL where the device has collectives (cuda), TCP between CPU processes otherwise.
 */
import { activeDevice } from '../backend/device.js';
import type { Communicator } from './communicator.js';
import { NcclCommunicator } from './nccl.js';
import { rendezvous, type RankEnv } from './rendezvous.js';
import { TcpCommunicator } from './tcp.js';

export async function joinJob(env: RankEnv, timeoutMs: number): Promise<Communicator> {
  const nccl = activeDevice().collectives;
  if (!nccl) return new TcpCommunicator(await rendezvous(env, timeoutMs));
  // Rank 0 makes the NCCL id; the rendezvous hands it to everyone; the star stays open to notice dead peers.
  const star = await rendezvous(env, timeoutMs, () => nccl.uniqueId());
  return new NcclCommunicator(nccl, star);
}
