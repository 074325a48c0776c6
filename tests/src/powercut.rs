//! A disk that can lose power: an in-memory FUSE filesystem that keeps, beside what every reader
//! sees, what a real disk would still hold after a power cut, and can be cut and brought back
//! with only that.
//!
//! The durability model is POSIX's, taken strictly (what ext4 or XFS may keep is at least this):
//!
//! - a file's bytes and size are durable once the file is `fsync`ed or `fdatasync`ed;
//! - a name in a folder (created, renamed, removed) is durable once the *folder* is `fsync`ed,
//!   and then every name it holds at that moment is;
//! - nothing else is: a file renamed into place but whose folder was never synced is gone after
//!   a cut, and so is a synced file whose name never reached the disk.
//!
//! [`Disk::cut`] is the power cut: from that moment every operation fails with `EIO`, as on a
//! dead disk, and the durable image is taken. [`Disk::power_on`] unmounts and mounts, at the
//! same path, a new filesystem holding exactly that image. Everything lives in memory: a file's
//! bytes are 4 KiB blocks shared between its two images until one of them changes, so an
//! `fsync` costs a copy of block pointers, not of the file.
//!
//! Locks are the kernel's own (the filesystem does not ask for `FUSE_POSIX_LOCKS`), which is what
//! SQLite needs on one machine; a shared `mmap` (SQLite's `-shm` file in WAL mode) works because
//! files are not opened with `direct_io`, so the kernel's page cache backs the mapping.
//!
//! Mounting needs `/dev/fuse` and the right to mount (root, or `fusermount3` from Debian's
//! `fuse3`); [`Disk::mount`] says why it cannot.

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    MountOption, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

const BLOCK: usize = 4096;
const ROOT: u64 = 1;
/// How long the kernel may cache names and attributes: only the kernel changes the tree, so
/// what it caches stays true until the filesystem is unmounted.
const TTL: Duration = Duration::from_secs(1);

/// A file's bytes: copy-on-write blocks, so the durable image shares what did not change.
#[derive(Clone, Default)]
struct Bytes {
    blocks: Vec<Arc<[u8; BLOCK]>>,
    len: u64,
}

impl Bytes {
    fn read(&self, offset: u64, size: usize) -> Vec<u8> {
        let end = self.len.min(offset.saturating_add(size as u64));
        let mut out = Vec::with_capacity(end.saturating_sub(offset) as usize);
        let mut at = offset;
        while at < end {
            let (block, within) = ((at / BLOCK as u64) as usize, (at % BLOCK as u64) as usize);
            let take = (BLOCK - within).min((end - at) as usize);
            out.extend_from_slice(&self.blocks[block][within..within + take]);
            at += take as u64;
        }
        out
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        let needed = end.div_ceil(BLOCK as u64) as usize;
        while self.blocks.len() < needed {
            self.blocks.push(Arc::new([0; BLOCK]));
        }
        let mut written = 0;
        while written < data.len() {
            let at = offset + written as u64;
            let (block, within) = ((at / BLOCK as u64) as usize, (at % BLOCK as u64) as usize);
            let take = (BLOCK - within).min(data.len() - written);
            Arc::make_mut(&mut self.blocks[block])[within..within + take]
                .copy_from_slice(&data[written..written + take]);
            written += take;
        }
        self.len = self.len.max(end);
    }

    fn truncate(&mut self, len: u64) {
        if len < self.len {
            self.blocks.truncate(len.div_ceil(BLOCK as u64) as usize);
            // A later extension must read zeros, not the bytes cut off now.
            let within = (len % BLOCK as u64) as usize;
            if within > 0
                && let Some(last) = self.blocks.last_mut()
            {
                Arc::make_mut(last)[within..].fill(0);
            }
        } else {
            let needed = len.div_ceil(BLOCK as u64) as usize;
            while self.blocks.len() < needed {
                self.blocks.push(Arc::new([0; BLOCK]));
            }
        }
        self.len = len;
    }
}

#[derive(Clone)]
struct Node {
    kind: FileType,
    perm: u16,
    uid: u32,
    gid: u32,
    mtime: SystemTime,
    /// What readers see.
    bytes: Bytes,
    /// What the disk holds: the bytes at the last fsync.
    synced_bytes: Bytes,
    /// A folder's names, as readers see them.
    names: BTreeMap<OsString, u64>,
    /// A folder's names at its last fsync.
    synced_names: BTreeMap<OsString, u64>,
}

impl Node {
    fn new(kind: FileType, perm: u16, uid: u32, gid: u32) -> Self {
        Self {
            kind,
            perm,
            uid,
            gid,
            mtime: SystemTime::now(),
            bytes: Bytes::default(),
            synced_bytes: Bytes::default(),
            names: BTreeMap::new(),
            synced_names: BTreeMap::new(),
        }
    }

    fn attr(&self, ino: u64) -> FileAttr {
        let size = match self.kind {
            FileType::Directory => 4096,
            _ => self.bytes.len,
        };
        FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: self.mtime,
            mtime: self.mtime,
            ctime: self.mtime,
            crtime: self.mtime,
            kind: self.kind,
            perm: self.perm,
            nlink: if self.kind == FileType::Directory {
                2
            } else {
                1
            },
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: BLOCK as u32,
            flags: 0,
        }
    }

    /// This node as the disk holds it.
    fn durable(&self) -> Self {
        Self {
            bytes: self.synced_bytes.clone(),
            names: self.synced_names.clone(),
            ..self.clone()
        }
    }
}

/// Every node ever created (a removed file may still be open, or named by a synced folder).
struct Tree {
    nodes: HashMap<u64, Node>,
    next: u64,
    /// The power is off: every operation fails.
    cut: bool,
}

impl Tree {
    fn empty() -> Self {
        let root = Node::new(FileType::Directory, 0o755, 0, 0);
        Self {
            nodes: HashMap::from([(ROOT, root)]),
            next: ROOT + 1,
            cut: false,
        }
    }

    /// What the disk holds: the nodes reachable from the root through synced names, each with
    /// its synced bytes and names.
    fn durable_image(&self) -> Self {
        let mut nodes = HashMap::new();
        let mut stack = vec![ROOT];
        while let Some(ino) = stack.pop() {
            if nodes.contains_key(&ino) {
                continue;
            }
            let Some(node) = self.nodes.get(&ino) else {
                continue;
            };
            let durable = node.durable();
            stack.extend(durable.names.values().copied());
            nodes.insert(ino, durable);
        }
        Self {
            nodes,
            next: self.next,
            cut: false,
        }
    }

    fn node(&self, ino: INodeNo) -> Result<&Node, Errno> {
        if self.cut {
            return Err(Errno::EIO);
        }
        self.nodes.get(&ino.0).ok_or(Errno::ENOENT)
    }

    fn node_mut(&mut self, ino: INodeNo) -> Result<&mut Node, Errno> {
        if self.cut {
            return Err(Errno::EIO);
        }
        self.nodes.get_mut(&ino.0).ok_or(Errno::ENOENT)
    }

    fn folder_mut(&mut self, ino: INodeNo) -> Result<&mut Node, Errno> {
        let node = self.node_mut(ino)?;
        if node.kind != FileType::Directory {
            return Err(Errno::ENOTDIR);
        }
        Ok(node)
    }

    fn lookup(&self, parent: INodeNo, name: &OsStr) -> Result<(u64, FileAttr), Errno> {
        let ino = *self.node(parent)?.names.get(name).ok_or(Errno::ENOENT)?;
        Ok((ino, self.node(INodeNo(ino))?.attr(ino)))
    }

    /// Adds a new node named `name` in `parent`.
    fn add(&mut self, parent: INodeNo, name: &OsStr, node: Node) -> Result<FileAttr, Errno> {
        let ino = self.next;
        let folder = self.folder_mut(parent)?;
        if folder.names.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        folder.names.insert(name.to_owned(), ino);
        folder.mtime = SystemTime::now();
        self.next += 1;
        let attr = node.attr(ino);
        self.nodes.insert(ino, node);
        Ok(attr)
    }

    fn remove(&mut self, parent: INodeNo, name: &OsStr, folder: bool) -> Result<(), Errno> {
        let (ino, attr) = self.lookup(parent, name)?;
        match (folder, attr.kind == FileType::Directory) {
            (true, false) => return Err(Errno::ENOTDIR),
            (false, true) => return Err(Errno::EISDIR),
            (true, true) if !self.node(INodeNo(ino))?.names.is_empty() => {
                return Err(Errno::ENOTEMPTY);
            }
            _ => {}
        }
        let parent = self.folder_mut(parent)?;
        parent.names.remove(name);
        parent.mtime = SystemTime::now();
        Ok(())
    }

    fn rename(
        &mut self,
        parent: INodeNo,
        name: &OsStr,
        new_parent: INodeNo,
        new_name: &OsStr,
    ) -> Result<(), Errno> {
        let (ino, attr) = self.lookup(parent, name)?;
        if let Ok((target, target_attr)) = self.lookup(new_parent, new_name) {
            if target == ino {
                return Ok(());
            }
            match (
                attr.kind == FileType::Directory,
                target_attr.kind == FileType::Directory,
            ) {
                (false, true) => return Err(Errno::EISDIR),
                (true, false) => return Err(Errno::ENOTDIR),
                (true, true) if !self.node(INodeNo(target))?.names.is_empty() => {
                    return Err(Errno::ENOTEMPTY);
                }
                _ => {}
            }
        }
        self.folder_mut(new_parent)?; // before anything changes
        let now = SystemTime::now();
        let from = self.folder_mut(parent)?;
        from.names.remove(name);
        from.mtime = now;
        let to = self.folder_mut(new_parent)?;
        to.names.insert(new_name.to_owned(), ino);
        to.mtime = now;
        Ok(())
    }
}

/// The filesystem the kernel talks to.
struct PowerCutFs {
    tree: Arc<Mutex<Tree>>,
}

fn lock(tree: &Mutex<Tree>) -> MutexGuard<'_, Tree> {
    tree.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl PowerCutFs {
    fn tree(&self) -> MutexGuard<'_, Tree> {
        lock(&self.tree)
    }
}

fn reply_entry(reply: ReplyEntry, result: Result<FileAttr, Errno>) {
    match result {
        Ok(attr) => reply.entry(&TTL, &attr, Generation(0)),
        Err(e) => reply.error(e),
    }
}

fn reply_attr(reply: ReplyAttr, result: Result<FileAttr, Errno>) {
    match result {
        Ok(attr) => reply.attr(&TTL, &attr),
        Err(e) => reply.error(e),
    }
}

fn reply_empty(reply: ReplyEmpty, result: Result<(), Errno>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e),
    }
}

fn perm(mode: u32, umask: u32) -> u16 {
    ((mode & !umask) & 0o7777) as u16
}

impl Filesystem for PowerCutFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        reply_entry(reply, self.tree().lookup(parent, name).map(|(_, a)| a));
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        reply_attr(reply, self.tree().node(ino).map(|n| n.attr(ino.0)));
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let mut tree = self.tree();
        let result = tree.node_mut(ino).and_then(|node| {
            if let Some(mode) = mode {
                node.perm = (mode & 0o7777) as u16;
            }
            node.uid = uid.unwrap_or(node.uid);
            node.gid = gid.unwrap_or(node.gid);
            if let Some(size) = size {
                if node.kind == FileType::Directory {
                    return Err(Errno::EISDIR);
                }
                node.bytes.truncate(size);
                node.mtime = SystemTime::now();
            }
            match mtime {
                Some(TimeOrNow::SpecificTime(at)) => node.mtime = at,
                Some(TimeOrNow::Now) => node.mtime = SystemTime::now(),
                None => {}
            }
            Ok(node.attr(ino.0))
        });
        reply_attr(reply, result);
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & S_IFMT != S_IFREG {
            // Only regular files: no program under test makes devices, fifos or sockets here.
            return reply.error(Errno::EPERM);
        }
        let node = Node::new(
            FileType::RegularFile,
            perm(mode, umask),
            req.uid(),
            req.gid(),
        );
        reply_entry(reply, self.tree().add(parent, name, node));
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let node = Node::new(FileType::Directory, perm(mode, umask), req.uid(), req.gid());
        reply_entry(reply, self.tree().add(parent, name, node));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.tree().remove(parent, name, false));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        reply_empty(reply, self.tree().remove(parent, name, true));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !flags.is_empty() {
            // RENAME_NOREPLACE / RENAME_EXCHANGE: nothing under test asks for them.
            return reply.error(Errno::EINVAL);
        }
        reply_empty(reply, self.tree().rename(parent, name, newparent, newname));
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.tree().node(ino) {
            Ok(_) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(e),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyData,
    ) {
        match self.tree().node(ino) {
            Ok(node) => reply.data(&node.bytes.read(offset, size as usize)),
            Err(e) => reply.error(e),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<fuser::LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut tree = self.tree();
        match tree.node_mut(ino) {
            Ok(node) => {
                node.bytes.write(offset, data);
                node.mtime = SystemTime::now();
                reply.written(data.len() as u32);
            }
            Err(e) => reply.error(e),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: fuser::LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(): makes nothing durable.
        reply_empty(reply, self.tree().node(ino).map(|_| ()));
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // fdatasync keeps the size too (it is needed to read the data back): the same as fsync.
        let mut tree = self.tree();
        let result = tree.node_mut(ino).map(|node| {
            node.synced_bytes = node.bytes.clone();
        });
        reply_empty(reply, result);
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.tree().node(ino) {
            Ok(node) if node.kind == FileType::Directory => {
                reply.opened(FileHandle(0), FopenFlags::empty());
            }
            Ok(_) => reply.error(Errno::ENOTDIR),
            Err(e) => reply.error(e),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let tree = self.tree();
        let node = match tree.node(ino) {
            Ok(node) => node,
            Err(e) => return reply.error(e),
        };
        let mut entries = vec![
            (ino.0, FileType::Directory, OsString::from(".")),
            (ino.0, FileType::Directory, OsString::from("..")),
        ];
        for (name, child) in &node.names {
            let kind = tree
                .nodes
                .get(child)
                .map_or(FileType::RegularFile, |n| n.kind);
            entries.push((*child, kind, name.clone()));
        }
        for (i, (child, kind, name)) in entries.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(child), i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let mut tree = self.tree();
        let result = tree.folder_mut(ino).map(|node| {
            node.synced_names = node.names.clone();
        });
        reply_empty(reply, result);
    }

    fn statfs(&self, _req: &Request, ino: INodeNo, reply: ReplyStatfs) {
        match self.tree().node(ino) {
            // A roomy disk: 1 GiB free in 4 KiB blocks.
            Ok(_) => reply.statfs(1 << 18, 1 << 18, 1 << 18, 1 << 20, 1 << 20, 4096, 255, 4096),
            Err(e) => reply.error(e),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply_empty(reply, self.tree().node(ino).map(|_| ()));
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let mut tree = self.tree();
        let result = match tree.lookup(parent, name) {
            Ok(_) if flags & O_EXCL != 0 => Err(Errno::EEXIST),
            Ok((ino, _)) => tree.node_mut(INodeNo(ino)).map(|node| {
                if flags & O_TRUNC != 0 {
                    node.bytes.truncate(0);
                }
                node.attr(ino)
            }),
            Err(e) if e == Errno::ENOENT => {
                let node = Node::new(
                    FileType::RegularFile,
                    perm(mode, umask),
                    req.uid(),
                    req.gid(),
                );
                tree.add(parent, name, node)
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(attr) => reply.created(
                &TTL,
                &attr,
                Generation(0),
                FileHandle(0),
                FopenFlags::empty(),
            ),
            Err(e) => reply.error(e),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if mode != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let mut tree = self.tree();
        let result = tree.node_mut(ino).map(|node| {
            if offset + length > node.bytes.len {
                node.bytes.truncate(offset + length);
            }
        });
        reply_empty(reply, result);
    }
}

// The few open(2) flags and mode bits the kernel passes on, as Linux numbers them.
const O_EXCL: i32 = 0o200;
const O_TRUNC: i32 = 0o1000;
const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;

/// The seed of a chaos run: `INVIGIL_CHAOS_SEED` replays one, otherwise a fresh one; printed
/// either way, so that a failure can be replayed.
pub fn chaos_seed() -> u64 {
    let seed = std::env::var("INVIGIL_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            // Fresh for each run without a crate for it: the clock's nanoseconds, mixed.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64;
            (nanos ^ u64::from(std::process::id())).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        });
    eprintln!("chaos seed {seed} (INVIGIL_CHAOS_SEED={seed} replays it)");
    seed
}

/// A mounted disk that can lose power. Unmounted on drop (lazily if something still holds it).
pub struct Disk {
    dir: tempfile::TempDir,
    tree: Arc<Mutex<Tree>>,
    session: Option<fuser::BackgroundSession>,
    /// The durable image taken at the cut, until the power is back on.
    after_cut: Option<Tree>,
}

impl Disk {
    /// Mounts an empty disk on a new temporary folder; an error says why it cannot (no
    /// `/dev/fuse`, no right to mount).
    pub fn mount() -> std::io::Result<Self> {
        if !Path::new("/dev/fuse").exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "/dev/fuse is missing",
            ));
        }
        let dir = tempfile::tempdir()?;
        let tree = Arc::new(Mutex::new(Tree::empty()));
        let session = mount_at(dir.path(), tree.clone())?;
        Ok(Self {
            dir,
            tree,
            session: Some(session),
            after_cut: None,
        })
    }

    /// [`mount`](Self::mount) for a test: `None` (and a line saying the test skips) where it
    /// cannot; under `CI`, where everything is installed and the tests run as root, a failure.
    pub fn mount_or_skip() -> Option<Self> {
        match Self::mount() {
            Ok(disk) => Some(disk),
            Err(e) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "mounting the FUSE disk failed (CI runs as root with /dev/fuse and fuse3): {e}"
                );
                eprintln!("skipped: the FUSE disk cannot be mounted here: {e}");
                None
            }
        }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The power cut: every operation fails with `EIO` from now on, and the disk keeps only what
    /// was synced until now.
    pub fn cut(&mut self) {
        let mut tree = lock(&self.tree);
        tree.cut = true;
        self.after_cut = Some(tree.durable_image());
    }

    /// The power is back: the filesystem is mounted again at the same path holding only what the
    /// disk kept at the [`cut`](Self::cut). Whatever still uses the old mount must have ended
    /// (the processes the cut killed).
    pub fn power_on(&mut self) -> std::io::Result<()> {
        let image = self.after_cut.take().expect("power_on follows a cut");
        self.unmount();
        self.tree = Arc::new(Mutex::new(image));
        self.session = Some(mount_at(self.dir.path(), self.tree.clone())?);
        Ok(())
    }

    fn unmount(&mut self) {
        let Some(session) = self.session.take() else {
            return;
        };
        if session.umount_and_join().is_err() {
            // Still busy: detach it (the filesystem fails everything anyway once cut), so that
            // nothing stays mounted after the test.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        lock(&self.tree).cut = true;
        self.unmount();
    }
}

fn mount_at(path: &Path, tree: Arc<Mutex<Tree>>) -> std::io::Result<fuser::BackgroundSession> {
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("invigil-powercut".into()),
        MountOption::RW,
        MountOption::NoAtime,
    ];
    // root runs the tests; other users of the machine have no business in these folders.
    config.acl = fuser::SessionACL::Owner;
    fuser::spawn_mount(PowerCutFs { tree }, path, &config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cut_keeps_what_was_synced_and_nothing_else() {
        let Some(mut disk) = Disk::mount_or_skip() else {
            return;
        };
        let root = disk.path().to_owned();
        let sync = |path: &Path| std::fs::File::open(path).unwrap().sync_all().unwrap();
        // Written, synced, renamed into place, folder synced: kept.
        std::fs::create_dir(root.join("kept")).unwrap();
        sync(&root);
        std::fs::write(root.join("kept/a.tmp"), b"first").unwrap();
        sync(&root.join("kept/a.tmp"));
        std::fs::rename(root.join("kept/a.tmp"), root.join("kept/a")).unwrap();
        sync(&root.join("kept"));
        // Then changed without a sync: the change is lost.
        std::fs::write(root.join("kept/a"), b"second, never synced").unwrap();
        // Synced, but its folder never was: lost.
        std::fs::write(root.join("kept/b"), b"synced, unnamed").unwrap();
        sync(&root.join("kept/b"));
        // A folder never synced into its parent: lost with everything in it.
        std::fs::create_dir(root.join("lost")).unwrap();
        std::fs::write(root.join("lost/c"), b"c").unwrap();
        sync(&root.join("lost/c"));
        sync(&root.join("lost"));
        assert_eq!(
            std::fs::read(root.join("kept/a")).unwrap(),
            b"second, never synced"
        );

        disk.cut();
        let dead = std::fs::read(root.join("kept/a")).unwrap_err();
        assert_eq!(dead.raw_os_error(), Some(5), "EIO after the cut: {dead}");
        disk.power_on().unwrap();

        assert_eq!(std::fs::read(root.join("kept/a")).unwrap(), b"first");
        let names = |dir: &Path| {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names(&root), ["kept"]);
        assert_eq!(names(&root.join("kept")), ["a"]);
    }

    #[test]
    fn bytes_read_back_what_was_written_across_blocks_and_truncation() {
        let mut bytes = Bytes::default();
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        bytes.write(100, &data);
        assert_eq!(bytes.len, 10_100);
        assert_eq!(bytes.read(100, 10_000), data);
        assert_eq!(bytes.read(0, 100), vec![0; 100]);
        let synced = bytes.clone();
        bytes.truncate(5000);
        bytes.truncate(6000);
        assert_eq!(
            bytes.read(5000, 1000),
            vec![0; 1000],
            "zeros after a shrink"
        );
        assert_eq!(
            synced.read(100, 10_000),
            data,
            "the other image is untouched"
        );
    }

    #[test]
    fn the_durable_image_holds_synced_bytes_under_synced_names_only() {
        let mut tree = Tree::empty();
        let file = |tree: &mut Tree, name: &str| {
            let node = Node::new(FileType::RegularFile, 0o644, 0, 0);
            tree.add(INodeNo(ROOT), OsStr::new(name), node).unwrap().ino
        };
        let synced = file(&mut tree, "synced");
        tree.nodes
            .get_mut(&synced.0)
            .unwrap()
            .bytes
            .write(0, b"kept");
        tree.nodes.get_mut(&synced.0).unwrap().synced_bytes = tree.nodes[&synced.0].bytes.clone();
        tree.nodes
            .get_mut(&synced.0)
            .unwrap()
            .bytes
            .write(4, b" and lost");
        let unsynced = file(&mut tree, "unsynced");
        tree.nodes
            .get_mut(&unsynced.0)
            .unwrap()
            .bytes
            .write(0, b"lost");
        let root = tree.nodes.get_mut(&ROOT).unwrap();
        root.synced_names = root.names.clone();
        let unnamed = file(&mut tree, "named after the folder's sync");
        let node = tree.nodes.get_mut(&unnamed.0).unwrap();
        node.bytes.write(0, b"synced, but its name is not");
        node.synced_bytes = node.bytes.clone();

        let image = tree.durable_image();
        let names: Vec<_> = image.nodes[&ROOT].names.keys().cloned().collect();
        assert_eq!(names, ["synced", "unsynced"]);
        assert_eq!(image.nodes[&synced.0].bytes.read(0, 100), b"kept");
        assert_eq!(image.nodes[&unsynced.0].bytes.len, 0);
        assert!(!image.nodes.contains_key(&unnamed.0));
    }
}
