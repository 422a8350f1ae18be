export { Agent, type AgentEvents, type AgentOptions, type SpecHook } from './agent.js';
export type { ChannelOutcome } from './channel.js';
export {
  AgentConfig,
  AgentConfigError,
  type AgentConfigInput,
  DEFAULT_DATA_DIR,
  loadAgentConfig,
  loadAgentConfigFromSeed,
  PairingPageConfig,
} from './config.js';
export { BOOT_VARS, type BootState, GrubEnv, type SlotBoot, type SlotMeta } from './device/boot-env.js';
export { type Device, slotBoot } from './device/device.js';
export { type Exec, ExecError, type ExecOptions, type ExecResult } from './device/exec.js';
export { type DeviceFileStat, type DeviceFiles, RootedFiles } from './device/files.js';
export { HttpError, type HttpResult } from './device/http.js';
export { type KubeNode, type KubeObject, KubernetesApiError, type KubernetesClient } from './device/kube-client.js';
export { Libvirt, parseKeyValues } from './device/libvirt.js';
export { LinuxDevice, type LinuxDeviceOptions, type OsFacts } from './device/linux/linux-device.js';
export { type LinuxSlotOptions, LinuxSlots } from './device/linux/linux-slots.js';
export {
  type BootLoader,
  copyInto,
  DEFAULT_KERNEL_ARGS,
  type DiskLayout,
  defaultBootLoader,
  diskLayout,
  GRUB_MODULES,
  grubConfig,
  type LayoutSizes,
  MiB,
  OsDiskError,
  type OsDiskOptions,
  type Partition,
  partitionMiB,
  SIGNED_BOOT_FILES,
  sfdiskScript,
  treeBytes,
  writeDisk,
  writeEsp,
  writeOsDisk,
  writePartitionTable,
} from './device/linux/os-disk.js';
export { VirshError, VirshSession } from './device/linux/virsh-session.js';
export { deviceOsMode, hasAbPartitions, reportedInventory } from './device/os-mode.js';
export type { DeviceProcesses, ProcessOptions, SessionProcess } from './device/processes.js';
export { runTool, type ToolResult } from './device/run-tool.js';
export { ServiceError, type ServiceManager, SystemdServiceManager } from './device/services.js';
export { SIM_DEVICE_UID_FILE, SimDevice, type SimDeviceOptions } from './device/sim/sim-device.js';
export {
  imageSimulatesKubernetes,
  SIMULATED_KUBERNETES_MARKER,
  SIMULATED_KUBERNETES_NOTICE,
  SimKubernetesGuestDevice,
  type SimKubernetesGuestOptions,
} from './device/sim/sim-guest-device.js';
export { SimKubernetes, simKubernetes } from './device/sim/sim-kubernetes.js';
export { SimServiceManager } from './device/sim/sim-services.js';
export { GRUBENV_PATH, SIM_BOOTED_SLOT_FILE, SimSlots } from './device/sim/sim-slots.js';
export { DeviceIdentity, IDENTITY_FILE, normalizeServerUrl, Registration } from './identity.js';
export { type BlockDisk, chooseDisk, type DiskChoice, diskOf, installLayout, listDisks, MIN_DATA_MIB } from './install/disks.js';
export {
  INSTALL_MEDIA_DIR,
  INSTALLED_SEED_DIR,
  InstallError,
  type InstallManifest,
  type InstallOptions,
  installOs,
  readInstallSeed,
} from './install/install-os.js';
export { AddonsManager } from './managers/addons/addons.manager.js';
export { ARTIFACT_PREFIX, ARTIFACT_RECORD, installArtifact } from './managers/kubernetes/artifact-install.js';
export { KubernetesManager, type KubernetesManagerOptions } from './managers/kubernetes/kubernetes.manager.js';
export { type KubernetesHealthOptions, kubernetesHealthCheck } from './managers/kubernetes/kubernetes-health.js';
export { distributionUnits, type UnitFile, type UnitLayout } from './managers/kubernetes/units.js';
export { type Manager, type ManagerContext, ManagerFailure, type ManagerName } from './managers/manager.js';
export { type OsHealthCheck, OsManager, type OsManagerOptions } from './managers/os/os.manager.js';
export { IMAGE_HEALTH_CHECKS_PATH, readImageHealthChecks } from './managers/os/profile-health.js';
export { type CreateManagersOptions, createManagers, MANAGER_ORDER, ManagerRunner, type RunnerOptions } from './managers/runner.js';
export { DOMAIN_PREFIX, domainXml, readDomainXml } from './managers/virt/domain-xml.js';
export { VirtManager } from './managers/virt/virt.manager.js';
export * as oci from './oci/index.js';
export { attachPairingDisplay, pairingBanner } from './pairing/pairing-display.js';
export type { PairingInfo } from './pairing/pairing-flow.js';
export { defaultPairingAddresses, PairingPage } from './pairing/pairing-page.js';
export { readNoCloudSeed, SeedError } from './seed/nocloud-seed.js';
export { writeSeedIso } from './seed/seed-iso.js';
export { loadSpec, SPEC_FILE, StoredSpec } from './spec-store.js';
export { type AgentTiming, DEFAULT_TIMING } from './timing.js';
export { AGENT_LOG_FILE, createAgentLogger } from './troubleshoot/agent-log.js';
export { TroubleshootService } from './troubleshoot/troubleshoot.service.js';
export { AGENT_VERSION } from './version.js';
