package fetch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"mapfront/settlement/internal/calendar"
)

// Local takes the file from a local directory, where an operator or
// another transfer put it (SPEC section 6: a local file too, for manual
// upload). The file is read in place: the settlement pipeline checks its
// sha256 on both of its passes, so a file changed underneath is caught.
type Local struct {
	Dir     string
	Pattern Pattern
	// Complete says how a file is known to be complete, as for FTP.
	Complete Completeness
}

// Name returns the file's path for date.
func (l Local) Name(date calendar.Date) string {
	return filepath.Join(l.Dir, filepath.FromSlash(l.Pattern.Expand(date)))
}

// Fetch returns the path of the file of date if it is there and complete.
// Errors: ErrNotThere when it is not; ErrIncomplete when it changed between
// two looks or its done-marker is not there yet; ErrConfig when it cannot be
// read or is not a regular file.
func (l Local) Fetch(ctx context.Context, date calendar.Date) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	path := l.Name(date)
	look := func() (info, error) { return lookLocal(path) }
	if sfx := l.Complete.MarkerSuffix; sfx != "" {
		if _, err := lookLocal(path + sfx); errors.Is(err, ErrNotThere) {
			if _, derr := look(); derr == nil {
				return "", fmt.Errorf("%s is there but its done-marker %s is not yet: %w", path, path+sfx, ErrIncomplete)
			}
			return "", err
		} else if err != nil {
			return "", err
		}
	}
	if _, err := stable(ctx, l.Complete.Stable, path, look); err != nil {
		return "", err
	}
	return path, nil
}

func lookLocal(path string) (info, error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return info{}, fmt.Errorf("%s: %w", path, ErrNotThere)
	case err != nil:
		return info{}, fmt.Errorf("local settlement file (check MAPFRONT_SETTLE_DIR): %w: %w", ErrConfig, err)
	case !fi.Mode().IsRegular():
		return info{}, fmt.Errorf("local settlement file %s is not a regular file: %w", path, ErrConfig)
	}
	return info{Size: fi.Size(), ModTime: fi.ModTime()}, nil
}
