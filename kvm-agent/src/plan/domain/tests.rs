use super::*;
use crate::wire::vm::DeviceAddress;
use common::agent::decode;

/// Reference section 7, F5 (a VR start).
pub const F5: &str = include_str!("f5.json");

fn opts(t: DomainType) -> DomainOptions {
    DomainOptions {
        domain_type: t,
        console_log_dir: PathBuf::from("/var/log/kvm-agent/console"),
        vnc_listen: "0.0.0.0".into(),
    }
}

fn f5() -> StartVmCmd {
    decode(F5.as_bytes()).unwrap()
}

/// `virt-xml-validate` (libvirt-clients, in scripts/packages.txt) checks the
/// XML against libvirt's RelaxNG schema.
fn validate(xml: &str, tag: &str) {
    let path = std::env::temp_dir().join(format!("kvm-agent-{tag}-{}.xml", std::process::id()));
    std::fs::write(&path, xml).unwrap();
    let out = std::process::Command::new("virt-xml-validate")
        .arg(&path)
        .arg("domain")
        .output()
        .expect("virt-xml-validate (package libvirt-clients) must be installed");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "virt-xml-validate rejected the XML:\n{}{}\n{xml}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn f5_golden_and_valid() {
    let p = plan(&f5(), &opts(DomainType::Kvm)).unwrap();
    let golden = include_str!("f5.golden.xml");
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/src/plan/domain/f5.golden.xml"),
            &p.xml,
        )
        .unwrap();
    }
    assert_eq!(
        p.xml, golden,
        "regenerate with UPDATE_GOLDEN=1 after review"
    );
    assert_eq!(p.name, "7c0de1f2a3b44c5d8e9f00112233aabb");
    assert_eq!(p.uuid, "7c0de1f2-a3b4-4c5d-8e9f-00112233aabb");
    assert_eq!(p.memory_kib, 1024 * 1024);
    assert_eq!(p.vcpus, 1);
    assert_eq!(
        p.channel_socket.as_deref(),
        Some(Path::new(
            "/var/lib/zstack/kvm/agentSocket/applianceVm.7c0de1f2a3b44c5d8e9f00112233aabb"
        ))
    );
    validate(&p.xml, "f5");
    let q = plan(&f5(), &opts(DomainType::Qemu)).unwrap();
    assert!(q.xml.starts_with("<domain type='qemu'>"));
    validate(&q.xml, "f5q");
}

#[test]
fn minimal_linux_vm_is_valid_and_escaped() {
    let cmd: StartVmCmd = decode(
        br#"{"vmInstanceUuid":"0123456789abcdef0123456789abcdef","vmName":"a <b> & 'c'",
        "cpuNum":2,"socketNum":1,"cpuOnSocket":2,"memory":67108864,"nestedVirtualization":"host-passthrough",
        "nics":[{"mac":"52:54:00:AA:00:01","bridgeName":"br0","deviceId":0,"driverType":"e1000","state":"disable"}],
        "consolePassword":"p'w","unknownField":{"x":1}}"#,
    )
    .unwrap();
    let p = plan(&cmd, &opts(DomainType::Kvm)).unwrap();
    assert!(
        p.xml
            .contains("<description>a &lt;b&gt; &amp; &apos;c&apos;</description>")
    );
    assert!(p.xml.contains("<cpu mode='host-passthrough'>"));
    assert!(
        p.xml
            .contains("<topology sockets='1' cores='2' threads='1'/>")
    );
    assert!(p.xml.contains("<mac address='52:54:00:aa:00:01'/>"));
    assert!(p.xml.contains("<model type='e1000'/>"));
    assert!(p.xml.contains("<link state='down'/>"));
    assert!(!p.xml.contains("<disk"));
    assert!(!p.xml.contains("<channel"));
    assert_eq!(p.channel_socket, None);
    validate(&p.xml, "min");
    // TCG cannot pass a host CPU through: no cpu mode under qemu.
    let q = plan(&cmd, &opts(DomainType::Qemu)).unwrap();
    assert!(!q.xml.contains("host-passthrough"));
    validate(&q.xml, "minq");
}

#[test]
fn bad_commands_name_the_field() {
    let mut c = f5();
    c.vm_instance_uuid = "nope".into();
    assert_eq!(
        plan(&c, &opts(DomainType::Kvm)).unwrap_err().to_string(),
        "field vmInstanceUuid: \"nope\" is not a 32-hex-digit uuid"
    );
    let mut c = f5();
    c.nics[1].mac = "zz".into();
    assert_eq!(
        plan(&c, &opts(DomainType::Kvm)).unwrap_err().to_string(),
        "field nics[1].mac: \"zz\" is not a MAC address"
    );
    let mut c = f5();
    c.nics[0].nic_internal_name = "vnic123456789.10".into();
    assert!(
        plan(&c, &opts(DomainType::Kvm))
            .unwrap_err()
            .to_string()
            .starts_with("field nics[0].nicInternalName")
    );
    let mut c = f5();
    c.memory = 0;
    assert_eq!(
        plan(&c, &opts(DomainType::Kvm)).unwrap_err(),
        DomainError::Missing("memory")
    );
    let mut c = f5();
    c.addons.channel.as_mut().unwrap().socket_path = "relative".into();
    assert!(plan(&c, &opts(DomainType::Kvm)).is_err());
}

/// Found by the domain_xml fuzz target: host paths reached the XML with
/// control characters (DEL here) when the plan was used without the API's
/// path confinement in front of it.
#[test]
fn host_paths_with_control_characters_are_refused() {
    let field = |c: &StartVmCmd| plan(c, &opts(DomainType::Kvm)).unwrap_err().to_string();
    let mut c = f5();
    c.root_volume.as_mut().unwrap().install_path = "/var/lib/zstack/a\u{7f}b.qcow2".into();
    assert!(
        field(&c).starts_with("field rootVolume.installPath"),
        "{}",
        field(&c)
    );
    let mut c = f5();
    c.addons.channel.as_mut().unwrap().socket_path = "/var/lib/zstack/s\nock".into();
    assert!(
        field(&c).starts_with("field addons.channel.socketPath"),
        "{}",
        field(&c)
    );
}

#[test]
fn capacity_errors_name_both_figures() {
    let room = HostRoom {
        mem_available_kib: 5000 * 1024,
        reserved_kib: 3766 * 1024,
        online_cpus: 2,
    };
    assert_eq!(
        check_fit("x", 4096 * 1024, 1, room)
            .unwrap_err()
            .to_string(),
        "cannot fit VM x: needs 4096 MiB memory, host has 1234 MiB available (MemAvailable 5000 MiB minus 3766 MiB reserved by running VMs)"
    );
    assert_eq!(
        check_fit("x", 1024, 4, room).unwrap_err().to_string(),
        "cannot fit VM x: needs 4 CPUs, host has 2 online CPUs"
    );
    assert!(check_fit("x", 1234 * 1024, 2, room).is_ok());
}

#[test]
fn auto_domain_type_rule() {
    assert_eq!(DomainType::choose(Ok(()), false).0, DomainType::Kvm);
    assert_eq!(DomainType::choose(Ok(()), true).0, DomainType::Qemu);
    let (t, why) = DomainType::choose(Err("No such file".into()), false);
    assert_eq!(t, DomainType::Qemu);
    assert!(why.contains("No such file"));
    assert_eq!("qemu".parse::<DomainType>(), Ok(DomainType::Qemu));
    assert!("auto".parse::<DomainType>().is_err());
}

#[test]
fn reads_devices_back_from_live_xml() {
    let live = "<domain><devices>
    <disk type='file' device='disk'>
      <source file='/x.qcow2'/>
      <target dev='vda' bus='virtio'/>
      <serial>5e6f</serial>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/>
    </disk>
    <interface type='bridge'>
      <mac address='fa:4c:ee:9a:76:00'/>
      <source bridge='br_eth0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>
    </interface>
    <interface type='bridge'>
      <mac address='fa:4c:ee:9a:76:01'/>
    </interface>
    <channel type='unix'>
      <source mode='bind' path='/run/a.sock'/>
      <target type='virtio' name='applianceVm.vport'/>
    </channel>
    </devices></domain>";
    let (nics, disks) = live_devices(live);
    assert_eq!(nics.len(), 2);
    assert_eq!(nics[0].0, "fa:4c:ee:9a:76:00");
    let a = nics[0].1.clone().unwrap();
    assert_eq!(
        (a.kind.as_deref(), a.slot.as_deref()),
        (Some("pci"), Some("0x03"))
    );
    assert_eq!(nics[1].1, None);
    assert_eq!(disks[0].0, "5e6f");
    assert_eq!(disks[0].1.clone().unwrap().slot.as_deref(), Some("0x04"));
    assert_eq!(channel_sockets(live), vec![PathBuf::from("/run/a.sock")]);
}

#[test]
fn reboot_boot_order_rewrite() {
    let p = plan(&f5(), &opts(DomainType::Qemu)).unwrap();
    let x = with_boot_devs(&p.xml, &["cdrom".into(), "hd".into()]);
    assert!(x.contains("    <boot dev='cdrom'/>\n    <boot dev='hd'/>\n"));
    assert_eq!(x.matches("<boot dev=").count(), 2);
    validate(&x, "reboot");
}

/// Our extension `addons.directKernelBoot`: `<kernel>`, `<initrd>` and
/// `<cmdline>` inside `<os>`, valid for libvirt, paths checked.
#[test]
fn direct_kernel_boot_extension() {
    let mut v: serde_json::Value = serde_json::from_str(F5).unwrap();
    v["addons"]["directKernelBoot"] = serde_json::json!({
        "kernel": "/srv/vr/vmlinuz", "initrd": "/srv/vr/initrd.img",
        "cmdline": "root=/dev/vda rw console=ttyS0 quiet <&>"});
    let cmd: StartVmCmd = decode(v.to_string().as_bytes()).unwrap();
    let p = plan(&cmd, &opts(DomainType::Qemu)).unwrap();
    let os = &p.xml[p.xml.find("  <os>").unwrap()..p.xml.find("  </os>").unwrap()];
    assert!(
        os.contains(
            "    <kernel>/srv/vr/vmlinuz</kernel>\n    <initrd>/srv/vr/initrd.img</initrd>\n    \
             <cmdline>root=/dev/vda rw console=ttyS0 quiet &lt;&amp;&gt;</cmdline>\n"
        ),
        "{os}"
    );
    validate(&p.xml, "dkb");
    // Reboot keeps the kernel lines.
    let x = with_boot_devs(&p.xml, &["hd".into()]);
    assert!(x.contains("<kernel>/srv/vr/vmlinuz</kernel>"));
    validate(&x, "dkbreboot");
    // Without the addon nothing changes (the golden file covers F5).
    assert!(
        !plan(&f5(), &opts(DomainType::Qemu))
            .unwrap()
            .xml
            .contains("<kernel>")
    );
    // Only the kernel is required; paths must be absolute.
    v["addons"]["directKernelBoot"] = serde_json::json!({"kernel": "/k"});
    let cmd: StartVmCmd = decode(v.to_string().as_bytes()).unwrap();
    let p = plan(&cmd, &opts(DomainType::Qemu)).unwrap();
    assert!(p.xml.contains("<kernel>/k</kernel>") && !p.xml.contains("<initrd>"));
    validate(&p.xml, "dkbmin");
    for (k, i, field) in [
        ("vmlinuz", "", "kernel"),
        ("", "", "kernel"),
        ("/k", "initrd", "initrd"),
    ] {
        v["addons"]["directKernelBoot"] = serde_json::json!({"kernel": k, "initrd": i});
        let cmd: StartVmCmd = decode(v.to_string().as_bytes()).unwrap();
        let e = plan(&cmd, &opts(DomainType::Qemu)).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("field addons.directKernelBoot.{field}: "))
                && e.ends_with("is not an absolute path"),
            "{e}"
        );
    }
}

#[test]
fn memballoon_keeps_the_recorded_address_and_is_read_back() {
    let mut cmd = f5();
    cmd.mem_balloon = Some(crate::wire::vm::MemBalloonTo {
        resource_uuid: "b".into(),
        device_address: Some(DeviceAddress {
            kind: Some("pci".into()),
            domain: Some("0x0000".into()),
            bus: Some("0x00".into()),
            slot: Some("0x07".into()),
            function: Some("0x0".into()),
            ..Default::default()
        }),
    });
    let p = plan(&cmd, &opts(DomainType::Kvm)).unwrap();
    assert!(
        p.xml.contains(
            "<memballoon model='virtio'>\n      <address type='pci' domain='0x0000' bus='0x00' slot='0x07' function='0x0'/>\n    </memballoon>"
        ),
        "{}",
        p.xml
    );
    validate(&p.xml, "balloon");
    assert_eq!(
        memballoon_address(&p.xml).and_then(|a| a.slot),
        Some("0x07".into())
    );
    // A drive address or a malformed one is left to libvirt.
    let mut bad = cmd.clone();
    bad.mem_balloon
        .as_mut()
        .unwrap()
        .device_address
        .as_mut()
        .unwrap()
        .slot = Some("7'".into());
    let p = plan(&bad, &opts(DomainType::Kvm)).unwrap();
    assert!(p.xml.contains("<memballoon model='virtio'/>"));
    assert_eq!(memballoon_address(&p.xml), None);
}

#[test]
fn reads_console_ports_and_interfaces_from_live_xml() {
    let live = "<domain><devices>
    <interface type='bridge'>
      <mac address='FA:4C:EE:9A:76:00'/>
      <source bridge='br0'/>
      <target dev='vnic1.0'/>
      <model type='virtio'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x03' function='0x0'/>
    </interface>
    <graphics type='vnc' port='5901' autoport='yes' listen='127.0.0.1'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
    <memballoon model='virtio'>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>
    </memballoon>
    </devices></domain>";
    let i = interface_by_mac(live, "fa:4c:ee:9a:76:00").unwrap();
    assert_eq!(i.tap.as_deref(), Some("vnic1.0"));
    assert_eq!(i.bridge.as_deref(), Some("br0"));
    assert!(i.xml.starts_with("<interface type='bridge'>") && i.xml.ends_with("</interface>"));
    assert_eq!(i.address.unwrap().slot.as_deref(), Some("0x03"));
    assert_eq!(interface_by_mac(live, "fa:4c:ee:9a:76:01"), None);
    assert_eq!(
        graphics(live),
        [Graphics {
            kind: "vnc".into(),
            port: Some(5901),
            tls_port: None
        }]
    );
    assert_eq!(
        memballoon_address(live).and_then(|a| a.slot),
        Some("0x05".into())
    );
}

/// The node sends `bootMenuSplashTimeout` in milliseconds (default 3000);
/// multiplying it made libvirt refuse every start with the default config.
#[test]
fn boot_menu_timeout_is_milliseconds_within_libvirts_limit() {
    let mut cmd = f5();
    cmd.boot_menu_splash_timeout = Some(3000);
    let xml = plan(&cmd, &opts(DomainType::Kvm)).unwrap().xml;
    assert!(
        xml.contains("<bootmenu enable='yes' timeout='3000'/>"),
        "{xml}"
    );
    cmd.boot_menu_splash_timeout = Some(100_000);
    let xml = plan(&cmd, &opts(DomainType::Kvm)).unwrap().xml;
    assert!(
        xml.contains("<bootmenu enable='yes' timeout='65535'/>"),
        "{xml}"
    );
}
