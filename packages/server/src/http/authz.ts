import { EdgeplaneError, type Role } from '@edgeplane/protocol';

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
