import { CLOUD_CONFIG_HEADER, CLOUD_CONFIG_KEY, CloudConfig } from '@edgeplane/protocol';

/** True when the text is a cloud-config document (cloud-init decides by its first line). */
export function isCloudConfig(text: string): boolean {
  return (
    text
      .replace(/^\uFEFF/, '')
      .split('\n', 1)[0]
      .trim() === CLOUD_CONFIG_HEADER
  );
}

/**
 * The agent's part of installer user-data, as cloud-init hands it over: a `#cloud-config` document
 * whose `edgeplane` key is the agent config (see docs/registration-installer.md). Returns the
 * mapping to validate as agent config, or an error message.
 */
export function agentConfigFromCloudConfig(doc: unknown): { config: Record<string, unknown> } | { error: string } {
  const parsed = CloudConfig.safeParse(doc);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.map(String).join('.') || '(root)'}: ${i.message}`);
    return { error: `is a cloud-config without a valid "${CLOUD_CONFIG_KEY}" section: ${issues.join('; ')}` };
  }
  return { config: { ...parsed.data[CLOUD_CONFIG_KEY] } };
}
