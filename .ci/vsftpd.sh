# Sourced by .ci/run: start vsftpd on 127.0.0.1:2121 with a throw-away local
# user, and point the settlement FTP tests at it (MAPFRONT_TEST_FTP_*).
ftp_user=mapfrontftp
ftp_pass=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
ftp_root=/srv/mapfront-ftp
id "$ftp_user" >/dev/null 2>&1 || useradd --home-dir "$ftp_root" --shell /bin/bash "$ftp_user"
echo "$ftp_user:$ftp_pass" | chpasswd
mkdir -p "$ftp_root/in" /var/run/vsftpd/empty
chown -R "$ftp_user" "$ftp_root"
cat > /tmp/mapfront-vsftpd.conf <<CONF
listen=YES
listen_address=127.0.0.1
listen_port=2121
anonymous_enable=NO
local_enable=YES
write_enable=YES
local_umask=022
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port=40000
pasv_max_port=40100
secure_chroot_dir=/var/run/vsftpd/empty
pam_service_name=vsftpd
seccomp_sandbox=NO
background=YES
xferlog_enable=NO
CONF
pkill -f mapfront-vsftpd.conf 2>/dev/null || true
vsftpd /tmp/mapfront-vsftpd.conf
for i in $(seq 1 25); do (echo > /dev/tcp/127.0.0.1/2121) 2>/dev/null && break; sleep 0.2; done
export MAPFRONT_TEST_FTP_ADDR=127.0.0.1:2121
export MAPFRONT_TEST_FTP_USER="$ftp_user"
export MAPFRONT_TEST_FTP_PASSWORD="$ftp_pass"
export MAPFRONT_TEST_FTP_DIR=in
echo "ci: vsftpd on $MAPFRONT_TEST_FTP_ADDR"
