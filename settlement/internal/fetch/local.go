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
}

// Name returns the file's path for date.
func (l Local) Name(date calendar.Date) string {
	return filepath.Join(l.Dir, filepath.FromSlash(l.Pattern.Expand(date)))
}

// Fetch returns the path of the file of date if it is there.
// Errors: ErrNotThere when it is not; another error when it cannot be read
// or is not a regular file.
func (l Local) Fetch(ctx context.Context, date calendar.Date) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	path := l.Name(date)
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("%s: %w", path, ErrNotThere)
	case err != nil:
		return "", fmt.Errorf("local settlement file: %w", err)
	case !fi.Mode().IsRegular():
		return "", fmt.Errorf("local settlement file %s is not a regular file", path)
	}
	return path, nil
}
