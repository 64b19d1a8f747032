# A first program for the sandbox: it reports the kernel it sees, who it runs as, and what it may touch.
import os
import subprocess

print("kernel: ", open("/proc/version").read().strip())
boot = subprocess.run(["dmesg"], capture_output=True, text=True).stdout.splitlines()
print("boot:   ", boot[0] if boot else "(no dmesg)")
print("user:    uid=%d gid=%d" % (os.getuid(), os.getgid()))
print("rootfs: ", "read-only" if os.statvfs("/").f_flag & os.ST_RDONLY else "WRITABLE")
print("writable:", ", ".join(p for p in ("/tmp", "/workspace") if os.access(p, os.W_OK)))
print("cwd:    ", os.getcwd())
