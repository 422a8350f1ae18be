import { EdgeplaneError, REMOTE_SHELL_PERMISSION, type Role } from '@edgeplane/protocol';
import { findByName } from '../resource/resource.repository.js';
import type { Executor } from '../store/db.js';

export type Verb = 'get' | 'list' | 'create' | 'update' | 'delete' | string;

/**
 * Role -> allowed `<plural>:<verb>` patterns. Viewers read; operators run the fleet (tokens, hosts,
 * projects) but cannot manage users or API tokens; admins do everything.
 */
const ROLE_RULES: Record<Role, string[]> = {
  viewer: ['*:get', '*:list'],
  operator: ['*:get', '*:list', 'registrationtokens:*', 'edgehosts:*', 'projects:*', 'clusterprofiles:*', 'clusters:*'],
  admin: ['*:*'],
};

function matches(rule: string, permission: string): boolean {
  const [rk, rv] = rule.split(':');
  const [pk, pv] = permission.split(':');
  return (rk === '*' || rk === pk) && (rv === '*' || rv === pv);
}

export function can(role: Role, permission: string): boolean {
  return ROLE_RULES[role].some((r) => matches(r, permission));
}

export function authorize(role: Role, permission: string): void {
  if (!can(role, permission)) throw new EdgeplaneError('Forbidden', `role "${role}" may not ${permission.replace(':', ' ')}`, { permission, role });
}

/**
 * Running commands on devices (remote shells, command health checks, an OS image chosen by hand)
 * needs more than a role: admins always may; operators only with `hosts:remote-shell` in their User
 * spec.permissions; viewers never. Read from the store at each check, so a revoked grant counts at once.
 */
export async function canRunCommands(db: Executor, caller: { user: string; role: Role }): Promise<boolean> {
  if (caller.role === 'admin') return true;
  if (caller.role !== 'operator') return false;
  const row = await findByName(db, 'users', caller.user);
  const perms = row ? ((JSON.parse(row.spec) as { permissions?: string[] }).permissions ?? []) : [];
  return perms.includes(REMOTE_SHELL_PERMISSION);
}

/** Throws Forbidden (naming `what`) unless the caller may run commands on devices. */
export async function requireRunCommands(db: Executor, caller: { user: string; role: Role }, what: string): Promise<void> {
  if (await canRunCommands(db, caller)) return;
  throw new EdgeplaneError(
    'Forbidden',
    `${what} runs commands on devices: user "${caller.user}" (role ${caller.role}) lacks permission ${REMOTE_SHELL_PERMISSION}`,
    {
      permission: REMOTE_SHELL_PERMISSION,
      role: caller.role,
    },
  );
}

/** The command health checks of a spec's list (argv as written), for comparing and auditing. */
export function commandChecks(checks: unknown): { name: string; command: string[] }[] {
  if (!Array.isArray(checks)) return [];
  return checks
    .filter((c): c is { name: string; type: string; command: string[] } => !!c && typeof c === 'object' && (c as { type?: unknown }).type === 'command')
    .map((c) => ({ name: c.name, command: c.command }));
}
