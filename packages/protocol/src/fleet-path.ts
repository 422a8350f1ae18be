// A plain constant, no zod: the console's entry reads it before the rest of the console has loaded
// (`@edgeplane/protocol/fleet-path`).

/** The path of the fleet summary: every site's health and counts, and the versions running, in one request. */
export const FLEET_SUMMARY_PATH = '/api/v1/fleet/summary';
